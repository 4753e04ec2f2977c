using FileShare.Server;

namespace FileShare.PowerShell;

/// <summary>
/// A request record as one log line for the default view. Not a table: a table gives the path and the outcome what
/// the fixed columns leave of the console's width, which at 80 columns (the width of redirected output too) cut them
/// to a few characters. A line keeps both, wrapped where it must be, the outcome (which may be a sentence) last.
/// </summary>
public static class RequestLogView
{
    public static string Line(RequestLogRecord record) =>
        $"{record.Time.ToLocalTime():yyyy-MM-dd HH:mm:ss} {record.Port,5} {record.RemoteEndPoint,-15} {record.Request,-4} '{record.Path}' " +
        $"{Units.Bytes(record.Bytes)} in {(long)record.Duration.TotalMilliseconds} ms: {record.Outcome}";
}

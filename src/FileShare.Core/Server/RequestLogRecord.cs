namespace FileShare.Server;

public enum RequestKind
{
    List,
    Stat,
    Read,
    Hash,
    SeedGet,
    Handshake,

    /// <summary>A connection dropped by a limit between or inside requests (e.g. slower than the minimum data rate).</summary>
    Connection,
}

/// <summary>One line of a server's log: one request, or one refused connection.</summary>
public sealed record RequestLogRecord(
    DateTime Time,
    int Port,
    string RemoteEndPoint,
    RequestKind Request,
    string Path,
    long Bytes,
    TimeSpan Duration,
    string Outcome);

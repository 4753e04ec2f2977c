using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>Reports one connection's requests to the server's request log, each with the client's address.</summary>
internal sealed class ConnectionLog
{
    private static readonly SearchValues<char> ControlCharacters =
        SearchValues.Create(Enumerable.Range(0, 0x2070).Select(c => (char)c).Where(c => char.IsControl(c) || SharePath.IsBidiControl(c)).ToArray());

    private readonly FileShareServer _server;
    private readonly string _remote;

    public ConnectionLog(FileShareServer server, Socket socket)
    {
        _server = server;
        _remote = socket.RemoteEndPoint is IPEndPoint remote
            ? (remote.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(remote.Address.MapToIPv4(), remote.Port) : remote).ToString()
            : "unknown";
    }

    public void Write(RequestKind kind, string path, long bytes, long started, string outcome) =>
        _server.Report(new RequestLogRecord(DateTime.UtcNow, _server.Port, _remote, kind, Printable(path), bytes, Stopwatch.GetElapsedTime(started), Printable(outcome)));

    /// <summary>
    /// The text with each control character written as \xHH. A client chooses the path it asks for (and so part of an
    /// outcome's message), and the log is printed on the operator's console, where an escape sequence would act.
    /// </summary>
    internal static string Printable(string text)
    {
        if (!text.AsSpan().ContainsAny(ControlCharacters))
        {
            return text;
        }

        var printable = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (char.IsControl(c))
            {
                printable.Append($"\\x{(int)c:X2}");
            }
            else if (SharePath.IsBidiControl(c))
            {
                printable.Append($"\\u{(int)c:X4}");
            }
            else
            {
                printable.Append(c);
            }
        }

        return printable.ToString();
    }

    public void WriteAbortedSend(RequestKind kind, string path, long sent, long started, Exception e)
    {
        if (e is DataRateException)
        {
            _server.Statistics.SlowConnectionDropped();
        }

        Write(kind, path, sent, started, (e is DataRateException ? "TooSlow: " : "Aborted: ") + e.Message);
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>Reports one connection's requests to the server's request log, each with the client's address.</summary>
internal sealed class ConnectionLog
{
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
        _server.Report(new RequestLogRecord(DateTime.UtcNow, _server.Port, _remote, kind, SharePath.Printable(path), bytes, Stopwatch.GetElapsedTime(started), SharePath.Printable(outcome)));

    public void WriteAbortedSend(RequestKind kind, string path, long sent, long started, Exception e)
    {
        if (e is DataRateException)
        {
            _server.Statistics.SlowConnectionDropped();
        }

        Write(kind, path, sent, started, (e is DataRateException ? "TooSlow: " : "Aborted: ") + e.Message);
    }
}

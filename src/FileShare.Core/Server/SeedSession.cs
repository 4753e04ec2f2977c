using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// A client of the original program: it sends a bare file name and gets "ok" followed by the whole file, "-1e" when
/// there is no such file, or "-2e" for anything else; the server then closes its side.
/// </summary>
internal sealed class SeedSession(FileShareServer server, Socket socket, NetworkStream stream, bool busy, ShareLookup share, ConnectionLog log, CancellationToken aborting)
{
    private const int MaxName = 1024;
    private static readonly byte[] Ok = "ok"u8.ToArray();
    private static readonly byte[] NotFound = "-1e"u8.ToArray();
    private static readonly byte[] ServerError = "-2e"u8.ToArray();

    private long _started;
    private string _name = "";

    private FileShareServerOptions Options => server.Options;

    /// <summary>Reads the file name, the whole of the request; <paramref name="handshakeToken"/> bounds the wait for it.</summary>
    public async Task ReadNameAsync(CancellationToken handshakeToken)
    {
        _started = Stopwatch.GetTimestamp();
        // Rented only for the name: a FileShare connection holds no buffer while it waits between requests.
        byte[] request = ArrayPool<byte>.Shared.Rent(MaxName);
        try
        {
            int taken = await socket.ReceiveAsync(request.AsMemory(0, MaxName), SocketFlags.None, handshakeToken).ConfigureAwait(false);
            _name = Encoding.UTF8.GetString(request, 0, taken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(request);
        }
    }

    public async Task ServeAsync()
    {
        if (busy)
        {
            await stream.WriteAsync(ServerError, aborting).ConfigureAwait(false);
            log.Write(RequestKind.SeedGet, _name, 0, _started, nameof(StatusCode.Busy));
            return;
        }

        if (Options.Certificate is not null || Options.AccessKey is not null)
        {
            // The original protocol can neither prove a key nor speak TLS; "-2e" is the only refusal its clients know.
            await stream.WriteAsync(ServerError, aborting).ConfigureAwait(false);
            log.Write(RequestKind.SeedGet, _name, 0, _started, (Options.Certificate is not null ? StatusCode.TlsRequired : StatusCode.AuthenticationRequired).ToString());
            return;
        }

        ServedFile? file = share.TryOpenForRead(_name, out StatusCode status, out _);
        if (file is null)
        {
            await stream.WriteAsync(status is StatusCode.NotFound or StatusCode.PathRefused or StatusCode.NotAFile ? NotFound : ServerError, aborting).ConfigureAwait(false);
            log.Write(RequestKind.SeedGet, _name, 0, _started, status.ToString());
            return;
        }

        using (file)
        {
            await stream.WriteAsync(Ok, aborting).ConfigureAwait(false);
            // Copied, as the original server sends, never with sendfile. The original client allocates a buffer per
            // receive, and its receive window grows only while it takes more per round trip than the window holds;
            // sendfile's segments are whole runs of pages, one per window at first, so that client could stay at its
            // first window for the whole file (a median 6.3 s per GiB here, against 1.2 s from the original server).
            using var sender = new RangeSender(socket, stream, Options.SendTimeout, Options.MinRate, kernelSends: false);
            try
            {
                await sender.SendAsync(file, 0, file.Version.Length, server.Statistics, aborting).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                log.WriteAbortedSend(RequestKind.SeedGet, _name, sender.Sent, _started, e);
                ResetOnClose();
                throw new TransferAbortedException(e);
            }

            socket.Shutdown(SocketShutdown.Send);
            log.Write(RequestKind.SeedGet, _name, sender.Sent, _started, nameof(StatusCode.Ok));
        }
    }

    /// <summary>
    /// The original protocol has no length: its client takes an orderly close for the end of the file. A file cut short
    /// must end in a reset instead, which also drops whatever the socket still holds for a client too slow to take it.
    /// </summary>
    private void ResetOnClose()
    {
        try
        {
            socket.LingerState = new LingerOption(enable: true, seconds: 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed (an abort): nothing is left to be taken for a whole file.
        }
    }
}

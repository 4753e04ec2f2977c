using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// One accepted socket. Its first byte decides the dialect: a leading NUL starts the FileShare handshake (version,
/// busy, TLS, access key), after which a <see cref="FileShareSession"/> serves the requests; anything else is a bare
/// file name from a client of the original program, answered by a <see cref="SeedSession"/>.
/// </summary>
internal sealed class ServerConnection
{
    private readonly FileShareServer _server;
    private readonly Socket _socket;
    private readonly bool _busy;
    private readonly CancellationToken _stopping;
    private readonly CancellationToken _aborting;
    private readonly ConnectionLog _log;
    private bool _handshakeDone;

    public ServerConnection(FileShareServer server, Socket socket, bool busy, CancellationToken stopping, CancellationToken aborting)
    {
        _server = server;
        _socket = socket;
        _busy = busy;
        _stopping = stopping;
        _aborting = aborting;
        _log = new ConnectionLog(server, socket);
    }

    public Task Completion { get; private set; } = Task.CompletedTask;

    private FileShareServerOptions Options => _server.Options;

    public void Start(Action onClosed) => Completion = RunGuardedAsync(onClosed);

    private async Task RunGuardedAsync(Action onClosed)
    {
        // Onto the thread pool at once, so the accept loop goes straight back to accepting.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        _server.Statistics.ConnectionOpened();
        try
        {
            await RunAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Never silently: an error here is a bug, and a faulted task nobody awaits would hide it.
            _server.Statistics.ConnectionFaulted();
            _log.Write(RequestKind.Connection, "", 0, Stopwatch.GetTimestamp(), "Failed: " + e.Message);
        }
        finally
        {
            // Release the server's slots before the count drops, so a caller that sees the count fall can reconnect.
            onClosed();
            _server.Statistics.ConnectionClosed();
        }
    }

    private async Task RunAsync()
    {
        using CancellationTokenRegistration abort = _aborting.UnsafeRegister(static s => ((Socket)s!).Dispose(), _socket);
        if (_aborting.IsCancellationRequested)
        {
            // The server was stopped with no drain (-Timeout 0, Remove-Job -Force) before this connection began.
            return;
        }

        using var stream = new NetworkStream(_socket, ownsSocket: true);
        byte[] dialect = new byte[1];
        long connected = Stopwatch.GetTimestamp();
        using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
        try
        {
            // Inside: a client that reset at once (or an abort just now) makes it throw, and the stream must close the socket.
            _socket.NoDelay = true;
            handshake.CancelAfter(Options.HandshakeTimeout);
            int peeked = await _socket.ReceiveAsync(dialect, SocketFlags.Peek, handshake.Token).ConfigureAwait(false);
            if (peeked == 0)
            {
                return;
            }

            if (dialect[0] == 0)
            {
                await ServeFileShareAsync(stream, handshake).ConfigureAwait(false);
            }
            else
            {
                await ServeSeedAsync(stream, handshake.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!_handshakeDone && handshake.IsCancellationRequested && !_stopping.IsCancellationRequested)
        {
            _server.Statistics.HandshakeTimedOut();
            _log.Write(RequestKind.Handshake, "", 0, connected, "TimedOut");
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or ProtocolException or TransferAbortedException)
        {
            // The peer went away, timed out, broke the protocol, or the server is stopping: the connection just ends.
        }
    }

    private async Task ServeFileShareAsync(NetworkStream stream, CancellationTokenSource handshake)
    {
        long started = Stopwatch.GetTimestamp();
        byte[] hellos = new byte[2 * ProtocolConstants.HelloLength];
        Memory<byte> clientHello = hellos.AsMemory(0, ProtocolConstants.HelloLength);
        Memory<byte> serverHello = hellos.AsMemory(ProtocolConstants.HelloLength);
        await stream.ReadExactlyAsync(clientHello, handshake.Token).ConfigureAwait(false);
        (ushort clientMin, ushort clientMax, uint asked) = Messages.ReadHello(clientHello.Span);
        var requested = (HandshakeFeatures)asked;
        HandshakeFeatures granted = requested & OfferedFeatures;
        ushort version = Math.Min(clientMax, ProtocolConstants.MaxVersion);
        StatusCode status = version < clientMin || version < ProtocolConstants.MinVersion ? StatusCode.UnsupportedVersion
            : _busy ? StatusCode.Busy
            : Options.Certificate is not null && !granted.HasFlag(HandshakeFeatures.Tls) ? StatusCode.TlsRequired
            : Options.AccessKey is not null && !granted.HasFlag(HandshakeFeatures.AccessKey) ? StatusCode.AuthenticationRequired
            : StatusCode.Ok;
        Messages.WriteServerHello(serverHello.Span, version, status, (uint)granted);
        await stream.WriteAsync(serverHello, handshake.Token).ConfigureAwait(false);
        if (status != StatusCode.Ok)
        {
            _log.Write(RequestKind.Handshake, "", 0, started, status.ToString());
            return;
        }

        using SslStream? tls = granted.HasFlag(HandshakeFeatures.Tls) ? new SslStream(stream, leaveInnerStreamOpen: true) : null;
        Stream transport = tls ?? (Stream)stream;
        string phase = "TlsFailed";
        try
        {
            if (tls is not null)
            {
                await tls.AuthenticateAsServerAsync(_server.TlsOptions!, handshake.Token).ConfigureAwait(false);
            }

            phase = "HandshakeAbandoned";
            if (granted.HasFlag(HandshakeFeatures.AccessKey)
                && !await MutualAuthentication.ServeAsync(transport, Options.AccessKey!, hellos, tls is null ? ReadOnlyMemory<byte>.Empty : _server.ChannelBinding, handshake.Token).ConfigureAwait(false))
            {
                _log.Write(RequestKind.Handshake, "", 0, started, nameof(StatusCode.AuthenticationFailed));
                return;
            }
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            // Most often a client that refused the certificate (a pin that did not match) and hung up; under TLS 1.3 that
            // shows only once the server writes its challenge, and a client without a key leaves no trace before its first request.
            _log.Write(RequestKind.Handshake, "", 0, started, $"{phase}: {(e.InnerException ?? e).Message}");
            return;
        }

        _handshakeDone = true;
        var session = new FileShareSession(_server, granted, _server.Share, _log, _socket, _stopping, _aborting);
        await session.ServeAsync(transport, tls is null ? _socket : null).ConfigureAwait(false);
    }

    private HandshakeFeatures OfferedFeatures =>
        HandshakeFeatures.PieceAlgorithms | HandshakeFeatures.FastPieceHashes
        | (Options.AccessKey is null ? HandshakeFeatures.None : HandshakeFeatures.AccessKey)
        | (Options.Certificate is null ? HandshakeFeatures.None : HandshakeFeatures.Tls);

    private async Task ServeSeedAsync(NetworkStream stream, CancellationToken handshakeToken)
    {
        var seed = new SeedSession(_server, _socket, stream, _busy, _server.Share, _log, _aborting);
        await seed.ReadNameAsync(handshakeToken).ConfigureAwait(false);
        _handshakeDone = true;
        await seed.ServeAsync().ConfigureAwait(false);
    }
}

/// <summary>A range reply promised bytes that could not all be sent; the connection must close.</summary>
internal sealed class TransferAbortedException(Exception inner) : Exception("Transfer aborted.", inner);

using System.Net;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Tests.Support;

/// <summary>
/// A TCP server on loopback that runs a test's script against whoever connects, to produce the misbehaviour (short
/// sends, silence, hostile replies) a real server never shows: against the first connection only, or against every
/// connection. Dispose cancels the scripts and closes everything. Also linked into the cmdlet tests.
/// </summary>
public sealed class ScriptedServer : IDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();

    public ScriptedServer(Func<Socket, NetworkStream, CancellationToken, Task> script, bool everyConnection = false)
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(4);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        Completion = everyConnection ? RunForEveryConnectionAsync(script) : RunAsync(script);
    }

    public int Port { get; }

    /// <summary>The script's own outcome, so a test can tell a broken script from a broken client (first connection only).</summary>
    public Task Completion { get; }

    /// <summary>
    /// Answers a FileShare client's hello with version 1 and OK, then returns the client's first request other than
    /// a hash request, which it refuses the way a server without hashes would (so the client reads unverified).
    /// </summary>
    public static async Task<Frame> AcceptRequestAsync(NetworkStream stream, FrameChannel channel, CancellationToken cancellationToken)
    {
        await AnswerHelloAsync(stream, cancellationToken);
        while (true)
        {
            Frame request = (await channel.ReadFrameAsync(cancellationToken))!.Value;
            if (request.Type != FrameType.HashRequest)
            {
                return request;
            }

            await channel.SendErrorAsync(FrameType.ErrorReply, request.RequestId, StatusCode.BadRequest, "no hashes here", cancellationToken);
        }
    }

    /// <summary>Takes the client's hello and answers it as a version 1 server that asks for nothing.</summary>
    public static async Task AnswerHelloAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        await stream.ReadExactlyAsync(hello, cancellationToken);
        Messages.ReadHello(hello);
        Messages.WriteServerHello(hello, 1, StatusCode.Ok, 0);
        await stream.WriteAsync(hello, cancellationToken);
    }

    /// <summary>
    /// A server that answers the first read by promising <paramref name="promised"/> bytes, sends only
    /// <paramref name="sent"/> of them, then does what <paramref name="afterwards"/> says (close, go silent, ...).
    /// </summary>
    public static ScriptedServer SendingPartOfAFile(long promised, int sent, Func<Socket, NetworkStream, CancellationToken, Task> afterwards) =>
        new(async (socket, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            Frame request = await AcceptRequestAsync(stream, channel, ct);
            await PromiseAsync(channel, request.RequestId, promised, ct);
            await stream.WriteAsync(new byte[sent], ct);
            await afterwards(socket, stream, ct);
        });

    /// <summary>Sends a read reply that promises <paramref name="promised"/> bytes, and none of them yet.</summary>
    public static ValueTask PromiseAsync(FrameChannel channel, uint requestId, long promised, CancellationToken cancellationToken)
    {
        SpanWriter writer = channel.BeginFrame(32);
        Messages.WriteReadReply(ref writer, new RangeReply(promised, promised, DateTime.UtcNow));
        return channel.SendFrameAsync(FrameType.ReadReply, requestId, writer.Position, cancellationToken);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
    }

    private async Task RunAsync(Func<Socket, NetworkStream, CancellationToken, Task> script)
    {
        using Socket socket = await _listener.AcceptAsync(_stop.Token);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        await script(socket, stream, _stop.Token);
    }

    private async Task RunForEveryConnectionAsync(Func<Socket, NetworkStream, CancellationToken, Task> script)
    {
        try
        {
            while (true)
            {
                Socket socket = await _listener.AcceptAsync(_stop.Token);
                _ = Task.Run(async () =>
                {
                    using (socket)
                    using (var stream = new NetworkStream(socket, ownsSocket: false))
                    {
                        try
                        {
                            await script(socket, stream, _stop.Token);
                        }
                        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                        {
                            // The client gave up on a hostile answer, which is what these scripts provoke.
                        }
                    }
                });
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }
}

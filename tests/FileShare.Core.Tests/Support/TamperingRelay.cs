using System.Net;
using System.Net.Sockets;

namespace FileShare.Tests.Support;

/// <summary>
/// A loopback TCP relay in front of a real server that lets a test tamper with what the server sends: flip one
/// byte at a given offset of the server-to-client stream, or hold that stream at an offset until released.
/// It also records every byte the clients sent, so a test can replay them.
/// </summary>
public sealed class TamperingRelay : IDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _holding = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly MemoryStream _fromClients = new();

    public TamperingRelay(int serverPort, long? flipAt = null, long? holdAt = null)
    {
        FlipAt = flipAt;
        HoldAt = holdAt;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(8);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _ = AcceptLoopAsync(serverPort);
    }

    public int Port { get; }

    public long? FlipAt { get; }

    public long? HoldAt { get; }

    /// <summary>Completes when the server-to-client stream has reached <see cref="HoldAt"/> and is being held.</summary>
    public Task Holding => _holding.Task;

    public void Release() => _release.TrySetResult();

    /// <summary>Every byte the clients have sent so far, in order.</summary>
    public byte[] SentByClients()
    {
        lock (_fromClients)
        {
            return _fromClients.ToArray();
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _release.TrySetResult();
        _listener.Dispose();
    }

    private async Task AcceptLoopAsync(int serverPort)
    {
        try
        {
            while (true)
            {
                Socket client = await _listener.AcceptAsync(_stop.Token);
                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(new IPEndPoint(IPAddress.Loopback, serverPort), _stop.Token);
                _ = PumpAsync(client, server, tamper: false);
                _ = PumpAsync(server, client, tamper: true);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool tamper)
    {
        byte[] buffer = new byte[64 * 1024];
        long offset = 0;
        try
        {
            while (true)
            {
                int limit = buffer.Length;
                if (tamper && HoldAt is { } hold && offset < hold)
                {
                    limit = (int)Math.Min(limit, hold - offset);
                }

                int read = await from.ReceiveAsync(buffer.AsMemory(0, limit), SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                if (!tamper)
                {
                    lock (_fromClients)
                    {
                        _fromClients.Write(buffer, 0, read);
                    }
                }

                if (tamper && FlipAt is { } flip && flip >= offset && flip < offset + read)
                {
                    buffer[flip - offset] ^= 0x5A;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
                offset += read;
                if (tamper && offset == HoldAt)
                {
                    _holding.TrySetResult();
                    await _release.Task.WaitAsync(_stop.Token);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }
}

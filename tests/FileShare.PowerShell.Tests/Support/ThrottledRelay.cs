using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace FileShare.PowerShell.Tests.Support;

/// <summary>
/// A loopback TCP relay to a server that passes the server's bytes on at a fixed rate, so a download takes a known
/// time on any machine (loopback alone can be fast enough to finish before anything is reported).
/// </summary>
public sealed class ThrottledRelay : IDisposable
{
    private const int ChunkSize = 64 * 1024;
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _closing = new();
    private readonly int _targetPort;
    private readonly long _bytesPerSecond;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _toClients;
    private long _holdAt = long.MaxValue;

    public ThrottledRelay(int targetPort, long bytesPerSecond)
    {
        _targetPort = targetPort;
        _bytesPerSecond = bytesPerSecond;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptLoopAsync();
    }

    public int Port { get; }

    /// <summary>Bytes passed on from the server to clients so far.</summary>
    public long BytesToClients => Interlocked.Read(ref _toClients);

    /// <summary>
    /// From the moment <paramref name="bytes"/> have been passed on to clients, passes on nothing more until
    /// <see cref="Release"/>: a transfer through the relay then surely stays in flight, however loaded the machine.
    /// </summary>
    public void HoldAfter(long bytes) => Interlocked.Exchange(ref _holdAt, bytes);

    /// <summary>Lets bytes flow again after <see cref="HoldAfter"/>.</summary>
    public void Release() => _released.TrySetResult();

    /// <summary>True once the relay holds back the rest (see <see cref="HoldAfter"/>).</summary>
    public bool Holding => BytesToClients >= Interlocked.Read(ref _holdAt) && !_released.Task.IsCompleted;

    public void Dispose()
    {
        _closing.Cancel();
        _listener.Stop();
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_closing.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        using (client)
        using (var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _targetPort, _closing.Token);
                await Task.WhenAll(PumpAsync(client, server, bytesPerSecond: null), PumpAsync(server, client, _bytesPerSecond));
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // Either side went away, or the relay is closing: both sockets close with it.
            }
        }
    }

    private async Task PumpAsync(Socket from, Socket to, long? bytesPerSecond)
    {
        byte[] buffer = new byte[ChunkSize];
        var clock = Stopwatch.StartNew();
        long total = 0;
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, _closing.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                if (bytesPerSecond is not null && BytesToClients >= Interlocked.Read(ref _holdAt))
                {
                    await _released.Task.WaitAsync(_closing.Token);
                }

                for (int sent = 0; sent < read;)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, _closing.Token);
                }

                total += read;
                if (bytesPerSecond is not null)
                {
                    Interlocked.Add(ref _toClients, read);
                }

                if (bytesPerSecond is { } rate && TimeSpan.FromSeconds((double)total / rate) - clock.Elapsed is { } ahead && ahead > TimeSpan.Zero)
                {
                    // Pacing, not waiting for a condition: this is what makes the relay slow.
                    await Task.Delay(ahead, _closing.Token);
                }
            }
        }
        catch
        {
            // A broken pump ends the relay of this connection in both directions.
            from.Dispose();
            to.Dispose();
            throw;
        }
    }
}

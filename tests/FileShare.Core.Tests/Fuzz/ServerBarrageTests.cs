using System.Collections.Concurrent;
using System.Net.Sockets;
using CsCheck;
using FileShare.Client;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Fuzz;

/// <summary>A live server takes thousands of hostile frames over hundreds of connections and keeps serving.</summary>
public sealed class ServerBarrageTests : ServerTestBase
{
    private const int Connections = 400;

    [Fact]
    public async Task Thousands_of_random_frames_neither_break_the_server_nor_slow_a_good_download_and_no_connection_leaks()
    {
        string hash = TestFiles.WriteRandom(Share("payload.bin"), 16L * TestFiles.MiB);
        Directory.CreateDirectory(Share("sub"));
        File.WriteAllText(Share("sub/a.txt"), "a");
        FileShareServer server = StartServer();
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;

        // A fixed number of scripts, each one connection's worth of frames (CsCheck draws them; the count never varies).
        var scripts = new ConcurrentBag<byte[][]>();
        WireGen.Frame.Array[1, 30].Sample(scripts.Add, iter: Connections);
        int frames = scripts.Sum(s => s.Length);

        Task barrage = Parallel.ForEachAsync(scripts, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (script, _) => await HammerAsync(server.Port, script));
        Task downloads = Task.Run(async () =>
        {
            // Its own pool, closed at the end, so only hostile connections could keep the count above zero.
            using var pool = new ConnectionPool(ClientOptions());
            for (int i = 0; i < 3; i++)
            {
                await new FileDownloader(pool).DownloadAsync(Host, server.Port, "payload.bin", Download($"payload{i}.bin"), false, null, CancellationToken.None);
                Assert.Equal(hash, TestFiles.Sha256(Download($"payload{i}.bin")));
            }
        });
        await Eventually.WithinAsync(Task.WhenAll(barrage, downloads), TimeSpan.FromSeconds(60), "the barrage and the good downloads");

        Assert.True(frames > 2_000, $"the barrage sent {frames} frames");
        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "every hostile connection is closed", TimeSpan.FromSeconds(20));
        Assert.Equal(0, server.Statistics.ConnectionFaults);
        Assert.DoesNotContain(records, r => r.Outcome.StartsWith("Failed", StringComparison.Ordinal));
        Assert.True(server.Statistics.TotalConnections >= Connections);
        await NewDownloader().DownloadAsync(Host, server.Port, "sub/a.txt", Download("a.txt"), false, null, CancellationToken.None);
        Assert.Equal("a", File.ReadAllText(Download("a.txt")));
    }

    /// <summary>
    /// One hostile connection: mostly a proper hello then the frames, sometimes the frames with no hello at all or
    /// after a garbled one; then it half-closes and reads whatever comes back until the server hangs up.
    /// </summary>
    private static async Task HammerAsync(int port, byte[][] script)
    {
        int opening = script[0].Length % 10;
        using RawPeer peer = opening < 8 ? await RawPeer.HandshakeAsync(port) : await RawPeer.ConnectAsync(port);
        try
        {
            if (opening == 8)
            {
                byte[] garbled = new byte[12];
                Random.Shared.NextBytes(garbled);
                garbled[0] = 0;
                await peer.SendAsync(garbled);
            }

            await peer.SendAsync(script.SelectMany(f => f).ToArray());
            peer.Socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // The server may hang up on a broken frame before the rest is sent.
        }

        await peer.DrainUntilClosedAsync(TimeSpan.FromSeconds(20));
    }
}

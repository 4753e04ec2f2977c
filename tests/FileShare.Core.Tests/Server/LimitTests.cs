using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>Each server limit triggers, says so (status, log record, statistics) and leaves other clients unharmed.</summary>
public sealed class LimitTests : ServerTestBase
{
    private readonly ConcurrentQueue<RequestLogRecord> _records = new();

    [Fact]
    public async Task A_client_trickling_a_request_below_the_minimum_rate_is_told_TooSlow_and_dropped_while_another_downloads()
    {
        string hash = TestFiles.WriteRandom(Share("payload.bin"), 16L * TestFiles.MiB);
        FileShareServer server = StartLimited(minDataRate: 1000, grace: TimeSpan.FromSeconds(1));
        using RawPeer trickler = await RawPeer.HandshakeAsync(server.Port);
        byte[] frame = RawPeer.Frame(FrameType.StatRequest, 1, RawPeer.PathBody("payload.bin"));
        Task trickling = TrickleAsync(trickler, frame, TimeSpan.FromMilliseconds(200));

        await NewDownloader().DownloadAsync(Host, server.Port, "payload.bin", Download("payload.bin"), false, null, CancellationToken.None);
        Frame? refusal = await trickler.ReadFrameAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(hash, TestFiles.Sha256(Download("payload.bin")));
        Assert.NotNull(refusal);
        Assert.Equal(FrameType.ErrorReply, refusal.Value.Type);
        var reader = new SpanReader(refusal.Value.Body.Span);
        Assert.Equal(StatusCode.TooSlow, Messages.ReadStatus(ref reader, out _));
        Assert.Null(await trickler.ReadFrameAsync(TimeSpan.FromSeconds(10)));
        await Eventually.TrueAsync(() => server.Statistics.SlowConnectionsDropped == 1, "the drop is counted");
        Assert.Contains(_records, r => r.Request == RequestKind.Connection && r.Outcome.StartsWith("TooSlow", StringComparison.Ordinal));
        // The server closed the connection under the trickler's feet: its next byte cannot be sent.
        var broken = await Assert.ThrowsAsync<IOException>(() => trickling);
        Assert.IsType<System.Net.Sockets.SocketException>(broken.InnerException);
    }

    [Fact]
    public async Task A_reader_draining_a_range_below_the_minimum_rate_is_dropped_while_another_downloads()
    {
        string hash = TestFiles.WriteRandom(Share("payload.bin"), 64L * TestFiles.MiB);
        FileShareServer server = StartLimited(minDataRate: 4 * TestFiles.MiB, grace: TimeSpan.FromSeconds(1));
        using RawPeer slowReader = await RawPeer.HandshakeAsync(server.Port, receiveBuffer: 4096);
        await slowReader.SendAsync(RawPeer.Frame(FrameType.ReadRequest, 1, RawPeer.PathBody("payload.bin", (0, -1))));
        Task<long> draining = ReadSlowlyAsync(slowReader, bytesPerTick: 1024, TimeSpan.FromMilliseconds(20));

        await NewDownloader().DownloadAsync(Host, server.Port, "payload.bin", Download("payload.bin"), false, null, CancellationToken.None);
        long taken = await Eventually.WithinAsync(draining, TimeSpan.FromSeconds(30), "the slow reader is cut off");

        Assert.Equal(hash, TestFiles.Sha256(Download("payload.bin")));
        Assert.True(taken < 64L * TestFiles.MiB, $"the slow reader got only part of the file before it was dropped ({taken:N0} bytes)");
        await Eventually.TrueAsync(() => server.Statistics.SlowConnectionsDropped == 1, "the drop is counted");
        Assert.Contains(_records, r => r is { Request: RequestKind.Read, Path: "payload.bin" } && r.Outcome.StartsWith("TooSlow", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_client_of_the_original_program_draining_below_the_minimum_rate_is_reset_while_another_downloads()
    {
        string hash = TestFiles.WriteRandom(Share("payload.bin"), 64L * TestFiles.MiB);
        FileShareServer server = StartLimited(minDataRate: 4 * TestFiles.MiB, grace: TimeSpan.FromSeconds(1));
        using RawPeer slowReader = await RawPeer.ConnectAsync(server.Port, receiveBuffer: 4096);
        await slowReader.SendAsync("payload.bin"u8.ToArray());
        bool reset = false;
        Task<long> draining = ReadSlowlyAsync(slowReader, bytesPerTick: 1024, TimeSpan.FromMilliseconds(20), onReset: () => reset = true);

        await NewDownloader().DownloadAsync(Host, server.Port, "payload.bin", Download("payload.bin"), false, null, CancellationToken.None);
        long taken = await Eventually.WithinAsync(draining, TimeSpan.FromSeconds(30), "the slow reader is cut off");

        Assert.Equal(hash, TestFiles.Sha256(Download("payload.bin")));
        // The original protocol has no length: an orderly close would tell this client it had the whole file.
        Assert.True(reset, $"the slow reader learned of the cut by an end of file after {taken:N0} bytes, not by a reset");
        await Eventually.TrueAsync(() => server.Statistics.SlowConnectionsDropped == 1, "the drop is counted");
        Assert.Contains(_records, r => r is { Request: RequestKind.SeedGet, Path: "payload.bin" } && r.Outcome.StartsWith("TooSlow", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_reader_with_large_socket_buffers_below_the_minimum_rate_is_dropped_within_seconds_not_hours()
    {
        // Buffers of several MiB swallow the first chunks at once, so the chunks grow to 16 MiB, whose own allowance at
        // this floor is four minutes; what the reader acknowledges over time shows it is far slower.
        MakeSparse("large.bin", 1L << 30);
        FileShareServer server = StartLimited(minDataRate: 64 * 1024, grace: TimeSpan.FromSeconds(1));
        using RawPeer slowReader = await RawPeer.HandshakeAsync(server.Port, receiveBuffer: 4 << 20);
        await slowReader.SendAsync(RawPeer.Frame(FrameType.ReadRequest, 1, RawPeer.PathBody("large.bin", (0, -1))));

        using var reading = new CancellationTokenSource();
        Task<long> draining = ReadSlowlyAsync(slowReader, bytesPerTick: 1024, TimeSpan.FromMilliseconds(50), reading.Token);

        // The reader itself learns of it only once it has drained its buffers, minutes later at this pace.
        await Eventually.TrueAsync(() => server.Statistics.SlowConnectionsDropped == 1, "the slow reader is dropped", TimeSpan.FromSeconds(20));
        Assert.Contains(_records, r => r is { Request: RequestKind.Read, Path: "large.bin" } && r.Outcome.StartsWith("TooSlow", StringComparison.Ordinal));
        reading.Cancel();
        await draining.ContinueWith(static _ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task A_name_longer_than_the_limit_is_refused_with_LimitExceeded_and_the_connection_goes_on()
    {
        File.WriteAllText(Share("short.txt"), "hello");
        FileShareServer server = StartLimited(maxNameBytes: 64);
        FileShareConnection connection = await ConnectAsync(server);
        string longName = new string('a', 40) + "/" + new string('é', 20);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.StatAsync(longName, CancellationToken.None));
        RemoteEntry entry = await connection.StatAsync("short.txt", CancellationToken.None);

        Assert.Equal(FileShareErrorKind.LimitExceeded, error.Kind);
        Assert.Contains("64 bytes", error.Message);
        Assert.Equal(5, entry.Length);
        Assert.Equal(1, server.Statistics.RequestsOverLimit);
        Assert.Contains(_records, r => r.Path == longName && r.Outcome == nameof(StatusCode.LimitExceeded));
    }

    [Fact]
    public async Task A_silent_connection_is_logged_as_a_handshake_timeout()
    {
        FileShareServer server = StartLimited(handshakeTimeout: TimeSpan.FromMilliseconds(300));
        using RawPeer silent = await RawPeer.ConnectAsync(server.Port);

        Assert.Equal(0, await silent.DrainUntilClosedAsync(TimeSpan.FromSeconds(10)));

        await Eventually.TrueAsync(() => server.Statistics.HandshakeTimeouts == 1, "the timeout is counted");
        Assert.Contains(_records, r => r is { Request: RequestKind.Handshake, Outcome: "TimedOut" });
    }

    [Fact]
    public async Task Pipelined_requests_are_answered_one_at_a_time_in_order()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartLimited();
        using RawPeer pipeliner = await RawPeer.HandshakeAsync(server.Port);
        const int count = 2000;
        byte[] oneFrame = RawPeer.Frame(FrameType.StatRequest, 0, RawPeer.PathBody("a.txt"));
        byte[] all = new byte[oneFrame.Length * count];
        for (int i = 0; i < count; i++)
        {
            oneFrame.CopyTo(all, i * oneFrame.Length);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(all.AsSpan(i * oneFrame.Length + 5), (uint)i + 1);
        }

        await pipeliner.SendAsync(all);
        var ids = new List<uint>();
        for (int i = 0; i < count; i++)
        {
            Frame reply = (await pipeliner.ReadFrameAsync(TimeSpan.FromSeconds(10)))!.Value;
            Assert.Equal(FrameType.StatReply, reply.Type);
            ids.Add(reply.RequestId);
        }

        Assert.Equal(Enumerable.Range(1, count).Select(i => (uint)i), ids);
    }

    private void MakeSparse(string name, long length)
    {
        using var file = new FileStream(Share(name), FileMode.CreateNew);
        file.SetLength(length);
    }

    private FileShareServer StartLimited(long minDataRate = 4096, TimeSpan? grace = null, int maxNameBytes = 4096, TimeSpan? handshakeTimeout = null)
    {
        FileShareServer server = StartServer(new FileShareServerOptions
        {
            Root = ShareRoot,
            BindAddress = IPAddress.Loopback,
            MinDataRate = minDataRate,
            MinDataRateGracePeriod = grace ?? TimeSpan.FromSeconds(10),
            MaxNameBytes = maxNameBytes,
            HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(5),
        });
        server.RequestCompleted = _records.Enqueue;
        return server;
    }

    /// <summary>Sends <paramref name="bytes"/> one at a time, <paramref name="pause"/> apart, until done or the server hangs up.</summary>
    internal static async Task TrickleAsync(RawPeer peer, byte[] bytes, TimeSpan pause, CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            await peer.SendAsync(bytes.AsMemory(i, 1), cancellationToken);
            await Task.Delay(pause, cancellationToken);
        }
    }

    /// <summary>Reads <paramref name="bytesPerTick"/> per <paramref name="tick"/> until the server closes; returns the bytes taken (each also given to <paramref name="taken"/>), calling <paramref name="onReset"/> if the close was a reset.</summary>
    internal static async Task<long> ReadSlowlyAsync(RawPeer peer, int bytesPerTick, TimeSpan tick, CancellationToken cancellationToken = default, IncrementalHash? taken = null, Action? onReset = null)
    {
        byte[] buffer = new byte[bytesPerTick];
        long total = 0;
        try
        {
            int read;
            while ((read = await peer.Stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                total += read;
                taken?.AppendData(buffer, 0, read);
                await Task.Delay(tick, cancellationToken);
            }
        }
        catch (IOException)
        {
            // A reset is how a dropped reader usually learns of it.
            onReset?.Invoke();
        }

        return total;
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>
/// MaxBytesPerSecond over real sockets: the bytes arrive whole and no faster than the cap allows, however many
/// downloads and sources share it. Only lower bounds on time are asserted: a throttle guarantees those, never an upper one.
/// </summary>
public sealed class TransferRateLimitTests : ServerTestBase
{
    private const long Cap = 2 * TestFiles.MiB;

    [Fact]
    public async Task A_capped_download_arrives_whole_and_no_sooner_than_its_size_less_one_burst_allows()
    {
        const long length = 3 * TestFiles.MiB;
        string hash = TestFiles.WriteRandom(Share("file.bin"), length);
        FileShareServer server = StartServer();
        var progress = new TransferProgress();
        Stopwatch clock = Stopwatch.StartNew();
        FileShareClientOptions options = CappedOptions(Cap, WireProtocol.FileShare);

        DownloadResult result = await NewDownloader(options).DownloadAsync(Host, server.Port, "file.bin", Download("file.bin"), false, progress, CancellationToken.None);

        AssertNoSoonerThanTheCapAllows(clock.Elapsed, length, options);
        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
        Assert.Equal(hash, result.Sha256);
        Assert.Equal((length, length), (progress.TotalBytes, progress.BytesReceived));
        Assert.Equal([Download("file.bin")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task Parallel_downloads_from_two_servers_share_one_cap()
    {
        // Four pieces: each source's first share is two, so both serve it.
        string[] names = ["four-pieces.bin", "a.bin", "b.bin"];
        long[] lengths = [4L * ProtocolConstants.PieceSize, TestFiles.MiB, TestFiles.MiB];
        string second = Temp.Create("second");
        string[] hashes = names.Select((name, i) => TestFiles.WriteRandom(Share(name), lengths[i])).ToArray();
        foreach (string name in names)
        {
            File.Copy(Share(name), Path.Join(second, name));
        }

        DownloadSource[] sources = [new(Host, StartServer().Port), new(Host, StartServer(root: second).Port)];
        var completed = new ConcurrentDictionary<string, DownloadResult>();
        var failed = new ConcurrentDictionary<string, Exception>();
        Stopwatch clock = Stopwatch.StartNew();
        FileShareClientOptions options = CappedOptions(12 * TestFiles.MiB, WireProtocol.FileShare);
        var batch = new DownloadBatch(NewDownloader(options), Downloads, [sources[1]], throttleLimit: 3)
        {
            Completed = (t, r) => completed[t.Name] = r,
            Failed = (t, e) => failed[t.Name] = e,
        };
        foreach (string name in names)
        {
            batch.Add(name, sources[0]);
        }

        await batch.RunAsync(CancellationToken.None);

        AssertNoSoonerThanTheCapAllows(clock.Elapsed, lengths.Sum(), options);
        Assert.Empty(failed);
        Assert.Equal(hashes, names.Select(n => TestFiles.Sha256(Download(n))));
        Assert.Equal(2, completed["four-pieces.bin"].Sources.Count(s => s.Bytes > 0));
    }

    [Fact]
    public async Task A_capped_download_over_the_original_protocol_arrives_whole_and_no_sooner_than_the_cap_allows()
    {
        const long length = 3 * TestFiles.MiB;
        string hash = TestFiles.WriteRandom(Share("file.bin"), length);
        (PythonPeer peer, int port) = await PythonPeer.StartSeedServerAsync(ShareRoot);
        Track(peer);
        Stopwatch clock = Stopwatch.StartNew();
        FileShareClientOptions options = CappedOptions(Cap, WireProtocol.Seed);

        DownloadResult result = await NewDownloader(options).DownloadAsync(Host, port, "file.bin", Download("file.bin"), false, null, CancellationToken.None);

        AssertNoSoonerThanTheCapAllows(clock.Elapsed, length, options);
        Assert.Equal((WireProtocol.Seed, length), (result.Protocol, result.Length));
        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
    }

    [Fact]
    public async Task Cancelling_while_the_cap_holds_a_download_back_ends_it_and_leaves_no_destination_file()
    {
        TestFiles.WriteRandom(Share("file.bin"), TestFiles.MiB);
        FileShareServer server = StartServer();
        var progress = new TransferProgress();
        using var cancel = new CancellationTokenSource();
        FileShareClientOptions options = CappedOptions(TransferRateLimit.MinimumBytesPerSecond, WireProtocol.FileShare);
        Task download = NewDownloader(options).DownloadAsync(Host, server.Port, "file.bin", Download("file.bin"), false, progress, cancel.Token);
        await Eventually.TrueAsync(() => progress.BytesReceived > 0, "the first bytes arrived");

        cancel.Cancel();

        // At the cap the rest would take over seventeen minutes: ending within the hang guard means the wait was cut.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Eventually.WithinAsync(download, TimeSpan.FromSeconds(10), "the cancelled download"));
        Assert.False(File.Exists(Download("file.bin")));
        Assert.All(TestFiles.Leftovers(Downloads), left => Assert.StartsWith(".", Path.GetFileName(left)));
    }

    [Fact]
    public async Task A_cap_above_the_servers_minimum_data_rate_is_not_cut_by_it_or_by_the_servers_stall_timeout()
    {
        // A part (about four seconds at the cap, 16 MiB) far larger than the socket buffers, so the server sees the pace.
        const long length = 12 * TestFiles.MiB;
        string hash = TestFiles.WriteRandom(Share("file.bin"), length);
        FileShareServer server = StartServer(new FileShareServerOptions
        {
            Root = ShareRoot,
            BindAddress = IPAddress.Loopback,
            SendTimeout = TimeSpan.FromSeconds(3),
            MinDataRate = 2 * TestFiles.MiB,
            MinDataRateGracePeriod = TimeSpan.FromSeconds(1),
        });

        await NewDownloader(CappedOptions(4 * TestFiles.MiB, WireProtocol.FileShare)).DownloadAsync(Host, server.Port, "file.bin", Download("file.bin"), false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
    }

    [Theory]
    [InlineData(TestFiles.MiB)]
    [InlineData(2 * ProtocolConstants.PieceSize)]
    public async Task Under_a_cap_a_file_is_asked_for_in_parts_of_the_part_time_at_the_cap_and_arrives_whole(long length)
    {
        string hash = TestFiles.WriteRandom(Share("file.bin"), length);
        FileShareServer server = StartServer();
        var limit = new TransferRateLimit(8 * TestFiles.MiB) { PartTime = TimeSpan.FromSeconds(1.0 / 32) };
        var options = new FileShareClientOptions { ReadTimeout = TimeSpan.FromSeconds(10), RateLimit = limit };

        DownloadResult result = await NewDownloader(options).DownloadAsync(Host, server.Port, "file.bin", Download("file.bin"), false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
        Assert.Equal(hash, result.Sha256);
        // Parts of 256 KiB, and one hash request.
        long parts = length / (256 * 1024);
        await Eventually.TrueAsync(() => server.Statistics.Requests == parts + 1, $"the server answered {parts} reads and a hash (now {server.Statistics.Requests})");
    }

    [Fact]
    public async Task Within_one_burst_a_reservation_is_granted_at_once_and_past_it_waits_until_cancelled()
    {
        var limit = new TransferRateLimit(TransferRateLimit.MinimumBytesPerSecond);
        using var cancel = new CancellationTokenSource();

        ValueTask<int> first = limit.ReserveAsync(64 * 1024, cancel.Token);
        Task<int> second = limit.ReserveAsync(64 * 1024, cancel.Token).AsTask();
        Task<int> third = limit.ReserveAsync(64 * 1024, cancel.Token).AsTask();

        Assert.True(first.IsCompletedSuccessfully);
        Assert.Equal(limit.Burst, await first);
        Assert.False(third.IsCompleted);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
    }

    [Fact]
    public async Task A_reservation_cancelled_while_it_waits_hands_its_grant_back()
    {
        var limit = new TransferRateLimit(TransferRateLimit.MinimumBytesPerSecond);
        Assert.True(limit.ReserveAsync(limit.Burst, CancellationToken.None).IsCompletedSuccessfully);
        using var cancel = new CancellationTokenSource();
        Task<int> waiting = limit.ReserveAsync(limit.Burst, cancel.Token).AsTask();

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        limit.Unused(limit.Burst);

        Assert.True(limit.ReserveAsync(limit.Burst, CancellationToken.None).IsCompletedSuccessfully, "a cancelled wait still held its bytes against the cap");
    }

    [Fact]
    public void What_a_short_read_did_not_use_is_granted_again_at_once()
    {
        var limit = new TransferRateLimit(TransferRateLimit.MinimumBytesPerSecond);
        Assert.True(limit.ReserveAsync(limit.Burst, CancellationToken.None).IsCompletedSuccessfully);

        limit.Unused(limit.Burst);

        Assert.True(limit.ReserveAsync(limit.Burst, CancellationToken.None).IsCompletedSuccessfully);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(TransferRateLimit.MinimumBytesPerSecond - 1)]
    public void A_cap_below_the_minimum_is_refused(long bytesPerSecond)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FileShareClientOptions { MaxBytesPerSecond = bytesPerSecond });
    }

    private static FileShareClientOptions CappedOptions(long bytesPerSecond, WireProtocol protocol) => new()
    {
        ConnectTimeout = TimeSpan.FromSeconds(5),
        ReadTimeout = TimeSpan.FromSeconds(10),
        Protocol = protocol,
        MaxBytesPerSecond = bytesPerSecond,
    };

    private static void AssertNoSoonerThanTheCapAllows(TimeSpan elapsed, long bytes, FileShareClientOptions options)
    {
        TransferRateLimit limit = options.RateLimit!;
        long cap = limit.BytesPerSecond;
        var floor = TimeSpan.FromSeconds((double)(bytes - limit.Burst) / cap);
        Assert.True(elapsed >= floor, $"{bytes:N0} bytes at {cap:N0} bytes/s took {elapsed.TotalSeconds:0.00} s, less than the {floor.TotalSeconds:0.00} s the cap allows");
    }
}

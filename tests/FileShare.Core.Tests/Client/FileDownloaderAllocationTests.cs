using FileShare.Client;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>Runs alone: it reads the process-wide allocation counter, which other tests running at the same time would inflate.</summary>
[CollectionDefinition(nameof(AllocationMeasurement), DisableParallelization = true)]
public sealed class AllocationMeasurement;

[Collection(nameof(AllocationMeasurement))]
public sealed class FileDownloaderAllocationTests : ServerTestBase
{
    private const long Small = 16L * TestFiles.MiB;
    private const long Large = 64L * TestFiles.MiB;

    // Smaller than the default so the larger file takes at least 768 more reads: any allocation per read shows.
    private const int ReceiveBuffer = 64 * 1024;

    [Fact]
    public async Task Downloading_allocates_a_small_fixed_amount_whatever_the_file_size()
    {
        string smallHash = TestFiles.WriteRandom(Share("small.bin"), Small);
        string largeHash = TestFiles.WriteRandom(Share("large.bin"), Large);
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader(new FileShareClientOptions { ReceiveBufferSize = ReceiveBuffer });
        await MeasureAsync(downloader, server.Port, "small.bin");
        await MeasureAsync(downloader, server.Port, "large.bin");

        // The least of several runs: now and then one run pays for a 64 KiB array (a pooled buffer parked on another
        // thread, or the test host's own traffic), and such runs come in clusters.
        long small = long.MaxValue, large = long.MaxValue;
        for (int run = 0; run < 6; run++)
        {
            small = Math.Min(small, await MeasureAsync(downloader, server.Port, "small.bin"));
            large = Math.Min(large, await MeasureAsync(downloader, server.Port, "large.bin"));
        }

        Assert.Equal(smallHash, TestFiles.Sha256(Download("small.bin")));
        Assert.Equal(largeHash, TestFiles.Sha256(Download("large.bin")));
        // The in-process server hands the larger file to sendfile in one chunk more (chunks grow fourfold to 64 MiB),
        // a few hundred bytes; 24 bytes per client read would add another 18 KiB.
        Assert.True(large - small < 20 * 1024, $"a 16 MiB download allocated {small:N0} bytes and a 64 MiB one {large:N0}");
        Assert.True(large < 256 * 1024, $"a 64 MiB download allocated {large:N0} bytes");
    }

    /// <summary>Bytes allocated by the whole process (client and in-process server) while one download runs.</summary>
    private async Task<long> MeasureAsync(FileDownloader downloader, int port, string name)
    {
        string destination = Download(name);
        File.Delete(destination);
        long before = GC.GetTotalAllocatedBytes(precise: true);
        await downloader.DownloadAsync(Host, port, name, destination, false, null, CancellationToken.None);
        return GC.GetTotalAllocatedBytes(precise: true) - before;
    }
}

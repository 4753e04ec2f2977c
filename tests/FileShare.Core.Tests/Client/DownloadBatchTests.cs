using System.Collections.Concurrent;
using FileShare.Client;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>Names to downloads: one per destination, every server that offers it, at most the throttle limit at a time.</summary>
public sealed class DownloadBatchTests : ServerTestBase
{
    [Fact]
    public void One_name_from_several_servers_is_one_download_with_each_server_once_in_the_order_given()
    {
        var extra = new DownloadSource("extra", 7000);
        var batch = NewBatch(NewDownloader(), [extra], throttleLimit: 1, (_, _) => { }, (_, _) => { });

        batch.Add("sub/a.bin", new DownloadSource("one", 5000));
        batch.Add("b.bin", new DownloadSource("one", 5000));
        batch.Add("sub/a.bin", new DownloadSource("two", 5000));
        batch.Add("sub/a.bin", new DownloadSource("one", 5000));

        Assert.Equal(["sub/a.bin", "b.bin"], batch.Transfers.Select(t => t.Name));
        Assert.Equal(["one:5000", "extra:7000", "two:5000"], batch.Transfers[0].Sources.Select(s => s.Endpoint));
        Assert.Equal("one:5000 and 2 more", batch.Transfers[0].Endpoint);
        Assert.Equal(Download("sub/a.bin"), batch.Transfers[0].Destination);
    }

    [Fact]
    public void A_name_that_would_land_outside_the_destination_is_refused_and_not_added()
    {
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 1, (_, _) => { }, (_, _) => { });

        var error = Assert.Throws<FileShareException>(() => batch.Add("../escape.bin", new DownloadSource("one", 5000)));

        Assert.Equal(FileShareErrorKind.InvalidPath, error.Kind);
        Assert.Empty(batch.Transfers);
    }

    [Fact]
    public async Task Every_file_reports_once_as_completed_or_failed_and_all_end_finished()
    {
        string[] hashes = Enumerable.Range(0, 20).Select(i => TestFiles.WriteRandom(Share($"f{i}.bin"), 4096 + i)).ToArray();
        FileShareServer server = StartServer();
        var completed = new ConcurrentDictionary<string, DownloadResult>();
        var failed = new ConcurrentDictionary<string, Exception>();
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 3, (t, r) => completed[t.Name] = r, (t, e) => failed[t.Name] = e);
        var source = new DownloadSource(Host, server.Port);
        for (int i = 0; i < 20; i++)
        {
            batch.Add($"f{i}.bin", source);
        }

        batch.Add("missing.bin", source);

        await batch.RunAsync(CancellationToken.None);

        Assert.Equal(20, completed.Count);
        Assert.All(Enumerable.Range(0, 20), i => Assert.Equal(hashes[i], TestFiles.Sha256(Download($"f{i}.bin"))));
        Assert.Equal(FileShareErrorKind.NotFound, Assert.IsType<FileShareException>(Assert.Single(failed).Value).Kind);
        Assert.All(batch.Transfers, t => Assert.True(t.Finished));
    }

    private DownloadBatch NewBatch(FileDownloader downloader, IReadOnlyList<DownloadSource> extra, int throttleLimit, Action<FileTransfer, DownloadResult> completed, Action<FileTransfer, Exception> failed) =>
        new(downloader, Downloads, extra, throttleLimit) { Completed = completed, Failed = failed };
}

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

    [Fact]
    public async Task One_after_another_a_file_refused_among_requests_sent_ahead_fails_alone_and_the_others_land_whole_over_one_connection()
    {
        string outside = Temp.Create("outside");
        File.WriteAllText(Path.Join(outside, "secret.txt"), "secret");
        string[] names = ["f0.bin", "f1.bin", "missing.bin", "folder", "leak.txt", "f5.bin", "f6.bin"];
        var hashes = new Dictionary<string, string>();
        foreach (string name in names.Where(n => n.StartsWith('f') && n.EndsWith(".bin")))
        {
            hashes[name] = TestFiles.WriteRandom(Share(name), 4096);
        }

        Directory.CreateDirectory(Share("folder"));
        File.CreateSymbolicLink(Share("leak.txt"), Path.Join(outside, "secret.txt"));
        FileShareServer server = StartServer();
        var completed = new ConcurrentDictionary<string, DownloadResult>();
        var failed = new ConcurrentDictionary<string, FileShareErrorKind>();
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 1, (t, r) => completed[t.Name] = r, (t, e) => failed[t.Name] = Assert.IsType<FileShareException>(e).Kind);
        foreach (string name in names)
        {
            batch.Add(name, new DownloadSource(Host, server.Port));
        }

        await batch.RunAsync(CancellationToken.None);

        Assert.Equal(new Dictionary<string, FileShareErrorKind>
        {
            ["missing.bin"] = FileShareErrorKind.NotFound,
            ["folder"] = FileShareErrorKind.NotAFile,
            ["leak.txt"] = FileShareErrorKind.PathRefused,
        }, failed.OrderBy(f => f.Key).ToDictionary());
        Assert.Equal(hashes.Keys.Order(), completed.Keys.Order());
        Assert.All(hashes, h => Assert.Equal(h.Value, TestFiles.Sha256(Download(h.Key))));
        Assert.Equal(hashes.Keys.Select(Download).Order(), TestFiles.Leftovers(Downloads).Order());
        Assert.Equal(1, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task One_after_another_the_next_files_requests_reach_the_server_before_the_current_one_is_reported()
    {
        for (int i = 0; i < 4; i++)
        {
            TestFiles.WriteRandom(Share($"f{i}.bin"), 4096);
        }

        FileShareServer server = StartServer();
        var expectedWhileReporting = new Dictionary<string, long> { ["f0.bin"] = 2, ["f1.bin"] = 6, ["f2.bin"] = 8, ["f3.bin"] = 8 };
        var requestsWhileReporting = new ConcurrentDictionary<string, long>();
        var reachedWhileReporting = new ConcurrentDictionary<string, bool>();
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 1, (t, _) =>
        {
            // The worker waits here, so only requests already sent for the next file can still reach the server. The
            // first file learns that the server answers piece maps; from the second on, each one's digest and read
            // (2 requests) go out for the next file before the current one is written.
            long expected = expectedWhileReporting[t.Name];
            // A wait that runs out leaves the count short of the expected one, which the assertion below reports.
            bool reached = SpinWait.SpinUntil(() => server.Statistics.Requests >= expected, TimeSpan.FromSeconds(30));
            requestsWhileReporting[t.Name] = server.Statistics.Requests;
            reachedWhileReporting[t.Name] = reached;
        }, (_, e) => Assert.Fail(e.Message));
        for (int i = 0; i < 4; i++)
        {
            batch.Add($"f{i}.bin", new DownloadSource(Host, server.Port));
        }

        await batch.RunAsync(CancellationToken.None);

        Assert.Equal(expectedWhileReporting.Keys.Order().Select(name => (name, true)), reachedWhileReporting.OrderBy(r => r.Key).Select(r => (r.Key, r.Value)));
        Assert.Equal(expectedWhileReporting, requestsWhileReporting.ToDictionary());
    }

    [Fact]
    public async Task An_empty_file_asked_for_with_its_digest_is_read_once()
    {
        TestFiles.WriteRandom(Share("first.bin"), 4096);
        File.WriteAllBytes(Share("empty.bin"), []);
        FileShareServer server = StartServer();
        var reads = new ConcurrentQueue<string>();
        server.RequestCompleted = record =>
        {
            if (record.Request == RequestKind.Read)
            {
                reads.Enqueue(record.Path);
            }
        };
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 1, (_, _) => { }, (_, e) => Assert.Fail(e.Message));
        batch.Add("first.bin", new DownloadSource(Host, server.Port));
        batch.Add("empty.bin", new DownloadSource(Host, server.Port));

        await batch.RunAsync(CancellationToken.None);

        Assert.Equal(0, new FileInfo(Download("empty.bin")).Length);
        Assert.Equal(["first.bin", "empty.bin"], reads);
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(4, 3)]
    public async Task As_many_files_as_the_throttle_limit_allows_are_in_flight_at_once(int throttleLimit, int files)
    {
        string[] hashes = Enumerable.Range(0, files).Select(i => TestFiles.WriteRandom(Share($"f{i}.bin"), 2 * 1024 * 1024)).ToArray();
        FileShareServer server = StartServer();
        // A cap for the whole batch keeps every download in flight for a second or more, whatever their number.
        FileShareClientOptions options = ClientOptions();
        FileDownloader downloader = NewDownloader(new FileShareClientOptions
        {
            ConnectTimeout = options.ConnectTimeout,
            ReadTimeout = options.ReadTimeout,
            MaxBytesPerSecond = files * 1024 * 1024,
        });
        var batch = NewBatch(downloader, [], throttleLimit, (_, _) => { }, (_, e) => Assert.Fail(e.Message));
        var source = new DownloadSource(Host, server.Port);
        for (int i = 0; i < files; i++)
        {
            batch.Add($"f{i}.bin", source);
        }

        Task running = batch.RunAsync(CancellationToken.None);

        await Eventually.TrueAsync(() => batch.Transfers.All(t => t.Started) || running.IsCompleted, "every file started");
        Assert.False(batch.Transfers.Any(t => t.Finished), "a file had to finish before the last one could start");
        await running;
        Assert.All(Enumerable.Range(0, files), i => Assert.Equal(hashes[i], TestFiles.Sha256(Download($"f{i}.bin"))));
    }

    [Fact]
    public async Task More_workers_than_the_servers_per_address_limit_take_turns_on_their_own_connections_and_every_file_arrives()
    {
        string[] hashes = Enumerable.Range(0, 12).Select(i => TestFiles.WriteRandom(Share($"f{i}.bin"), 4096 + i)).ToArray();
        FileShareServer server = StartServer(new FileShareServerOptions { Root = ShareRoot, MaxConnectionsPerAddress = 2 });
        FileShareClientOptions options = ClientOptions();
        // Shorter than the run would take if a worker turned away had to wait for the server rather than for a connection of its own.
        FileDownloader downloader = NewDownloader(new FileShareClientOptions { ConnectTimeout = options.ConnectTimeout, ReadTimeout = options.ReadTimeout, BusyRetryTime = TimeSpan.FromSeconds(3) });
        var failed = new ConcurrentDictionary<string, Exception>();
        var batch = NewBatch(downloader, [], throttleLimit: 6, (_, _) => { }, (t, e) => failed[t.Name] = e);
        var source = new DownloadSource(Host, server.Port);
        for (int i = 0; i < 12; i++)
        {
            batch.Add($"f{i}.bin", source);
        }

        await batch.RunAsync(CancellationToken.None);

        Assert.Empty(failed);
        Assert.All(Enumerable.Range(0, 12), i => Assert.Equal(hashes[i], TestFiles.Sha256(Download($"f{i}.bin"))));
    }

    [Fact]
    public async Task Folders_made_for_files_that_all_failed_are_removed_and_a_folder_with_a_file_stays()
    {
        string hash = TestFiles.WriteRandom(Share("kept/ok.bin"), 4096);
        FileShareServer server = StartServer();
        var failed = new ConcurrentDictionary<string, FileShareErrorKind>();
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 2, (_, _) => { }, (t, e) => failed[t.Name] = Assert.IsType<FileShareException>(e).Kind);
        var source = new DownloadSource(Host, server.Port);
        batch.Add("deep/er/missing.bin", source);
        batch.Add("kept/ok.bin", source);
        batch.Add("kept/missing.bin", source);

        await batch.RunAsync(CancellationToken.None);

        Assert.Equal([FileShareErrorKind.NotFound, FileShareErrorKind.NotFound], failed.Values);
        Assert.False(Directory.Exists(Download("deep")), "an empty folder was left for files that never arrived");
        Assert.Equal(["ok.bin"], Directory.GetFileSystemEntries(Download("kept")).Select(Path.GetFileName));
        Assert.Equal(hash, TestFiles.Sha256(Download("kept/ok.bin")));
    }

    [Fact]
    public async Task A_server_that_cannot_be_reached_is_tried_once_per_worker_not_once_per_file()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int closedPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var failed = new ConcurrentDictionary<string, FileShareException>();
        var batch = NewBatch(NewDownloader(), [], throttleLimit: 3, (_, _) => { }, (t, e) => failed[t.Name] = Assert.IsType<FileShareException>(e));
        for (int i = 0; i < 30; i++)
        {
            batch.Add($"f{i}.bin", new DownloadSource(Host, closedPort));
        }

        await batch.RunAsync(CancellationToken.None);

        Assert.Equal(30, failed.Count);
        Assert.All(failed.Values, e => Assert.Equal((FileShareErrorKind.ConnectionFailed, $"{Host}:{closedPort}"), (e.Kind, e.Endpoint)));
        // Only the workers that started together can have found the port closed for themselves.
        Assert.True(failed.Values.Count(e => e.Message.Contains("not tried again", StringComparison.Ordinal)) >= 30 - 3,
            string.Join(Environment.NewLine, failed.Values.Select(e => e.Message)));
    }

    private DownloadBatch NewBatch(FileDownloader downloader, IReadOnlyList<DownloadSource> extra, int throttleLimit, Action<FileTransfer, DownloadResult> completed, Action<FileTransfer, Exception> failed) =>
        new(downloader, Downloads, extra, throttleLimit) { Completed = completed, Failed = failed };
}

using System.Diagnostics;
using System.Security.Cryptography;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

public sealed class FileDownloaderTests : ServerTestBase
{
    [Theory]
    [InlineData(1, 4 * TestFiles.MiB)]
    [InlineData(16, 4 * TestFiles.MiB)]
    [InlineData(17, 2 * TestFiles.MiB)]
    [InlineData(200, 256 * 1024)]
    [InlineData(1000, 128 * 1024)]
    public void Receive_buffers_of_many_downloads_at_once_share_64_MiB(int downloads, int expectedSize)
    {
        int size = FileShareClientOptions.ReceiveBufferFor(downloads);

        Assert.Equal(expectedSize, size);
        Assert.True(size == 128 * 1024 || downloads * size <= 64L * TestFiles.MiB);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(64 * 1024)]
    [InlineData((64 * 1024) + 1)]
    [InlineData((4 * TestFiles.MiB) - 1)]
    [InlineData(4 * TestFiles.MiB)]
    [InlineData((4 * TestFiles.MiB) + 1)]
    [InlineData((8 * TestFiles.MiB) + 1)]
    public async Task A_file_arrives_byte_for_byte_at_sizes_around_the_receive_buffer(int length)
    {
        Assert.Equal(4 * TestFiles.MiB, FileShareClientOptions.Default.ReceiveBufferSize);
        string hash = TestFiles.WriteRandom(Share("file.bin"), length);
        FileShareServer server = StartServer();
        var progress = new TransferProgress();

        DownloadResult result = await NewDownloader(new FileShareClientOptions { ReadTimeout = TimeSpan.FromSeconds(10) }).DownloadAsync(Host, server.Port, "file.bin", Download("file.bin"), false, progress, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
        Assert.Equal((length, WireProtocol.FileShare, EndpointOf(server.Port)), (result.Length, result.Protocol, result.Endpoint));
        Assert.Equal((length, length), (progress.TotalBytes, progress.BytesReceived));
        Assert.Equal([Download("file.bin")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_download_that_fails_before_any_piece_is_verified_leaves_nothing_behind()
    {
        TestFiles.WriteRandom(Share("big.bin"), (2 * 4 * TestFiles.MiB) + 1);
        FileShareServer server = StartServer();
        // The server's bytes stop a megabyte in, inside the first piece; the client gives up after a second of silence.
        using var relay = new TamperingRelay(server.Port, holdAt: TestFiles.MiB);

        var failed = await Assert.ThrowsAsync<FileShareException>(() => Eventually.WithinAsync(
            NewDownloader(ClientOptions(readTimeout: TimeSpan.FromSeconds(1))).DownloadAsync(Host, relay.Port, "big.bin", Download("big.bin"), false, null, CancellationToken.None),
            TimeSpan.FromSeconds(15), "the stalled download"));

        Assert.Equal(FileShareErrorKind.Timeout, failed.Kind);
        // No preallocated 8 MiB partial file, no record of nothing: there was nothing to resume from.
        Assert.Empty(TestFiles.Leftovers(Downloads));
        relay.Release();
    }

    [Theory]
    [InlineData(10_000)]
    [InlineData((2 * 4 * TestFiles.MiB) + 1)]
    public async Task A_folder_where_the_file_belongs_fails_the_download_naming_it_and_the_verified_file_is_kept_for_the_next_run(int length)
    {
        string hash = TestFiles.WriteRandom(Share("x.bin"), length);
        FileShareServer server = StartServer();
        Directory.CreateDirectory(Download("x.bin"));

        var refused = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, server.Port, "x.bin", Download("x.bin"), true, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.LocalWriteFailed, refused.Kind);
        Assert.Contains($"'{Download("x.bin")}' is a folder", refused.Message);
        Assert.True(File.Exists(Download(".x.bin.partial")), "the verified download was not kept");
        Directory.Delete(Download("x.bin"));
        long sentBefore = server.Statistics.BytesSent;

        DownloadResult result = await NewDownloader().DownloadAsync(Host, server.Port, "x.bin", Download("x.bin"), true, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("x.bin")));
        Assert.Equal(length, result.BytesResumed);
        Assert.Equal(0, server.Statistics.BytesSent - sentBefore);
        Assert.Equal([Download("x.bin")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_partial_file_that_cannot_be_made_closes_the_connection_the_file_was_already_asked_on()
    {
        TestFiles.WriteRandom(Share("a.bin"), 100_000);
        TestFiles.WriteRandom(Share("b.bin"), 100_000);
        FileShareServer server = StartServer(idleTimeout: TimeSpan.FromMinutes(5));
        var pool = new ConnectionPool(ClientOptions());
        var downloader = new FileDownloader(pool);
        // After one download the pool knows the server answers piece maps, so the next asks for hashes and bytes at once.
        await downloader.DownloadAsync(Host, server.Port, "a.bin", Download("a.bin"), false, null, CancellationToken.None);
        Directory.CreateDirectory(PartialFile.PathFor(Download("b.bin")));

        await Assert.ThrowsAsync<IOException>(() => downloader.DownloadAsync(Host, server.Port, "b.bin", Download("b.bin"), false, null, CancellationToken.None));
        pool.Dispose();

        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "every connection of the disposed pool is closed");
    }

    [Fact]
    public async Task From_a_server_known_to_answer_piece_maps_a_file_costs_one_round_trip_and_is_still_verified()
    {
        byte[][] contents = [Random.Shared.GetItems<byte>(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray(), 4096), Random.Shared.GetItems<byte>(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray(), 4096)];
        DateTime written = DateTime.UtcNow;
        int pipelined = 0;

        // Answers a hash only once the next request has arrived: a client waiting for the hash before asking for the
        // bytes would stall here. The first hash of the connection is answered at once (nothing is known about the server yet).
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            await ScriptedServer.AnswerHelloAsync(stream, ct);
            int hashes = 0;
            while (await channel.ReadFrameAsync(ct) is { } request)
            {
                Assert.Equal(FrameType.HashRequest, request.Type);
                byte[] content = contents[int.Parse(Messages.ReadPathRequestWithOptions(request.Body.Span).Path[1..2])];
                Frame? read = null;
                if (hashes++ > 0)
                {
                    using var patience = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    patience.CancelAfter(TimeSpan.FromSeconds(10));
                    read = await channel.ReadFrameAsync(patience.Token);
                    pipelined++;
                }

                var digest = new FileDigest(content.Length, written, SHA256.HashData(content), ProtocolConstants.PieceSize, SHA256.HashData(content));
                SpanWriter writer = channel.BeginFrame(Messages.HashReplySize(digest, withPieces: true));
                Messages.WriteHashReply(ref writer, digest, withPieces: true);
                await channel.SendFrameAsync(FrameType.HashReply, request.RequestId, writer.Position, ct);
                read ??= await channel.ReadFrameAsync(ct);
                Assert.Equal(FrameType.ReadRequest, read!.Value.Type);
                writer = channel.BeginFrame(32);
                Messages.WriteReadReply(ref writer, new RangeReply(content.Length, content.Length, written));
                await channel.SendFrameAsync(FrameType.ReadReply, read.Value.RequestId, writer.Position, ct);
                await stream.WriteAsync(content, ct);
            }
        });
        FileDownloader downloader = NewDownloader();

        await downloader.DownloadAsync(Host, server.Port, "f0.bin", Download("f0.bin"), false, null, CancellationToken.None);
        DownloadResult second = await downloader.DownloadAsync(Host, server.Port, "f1.bin", Download("f1.bin"), false, null, CancellationToken.None);

        Assert.Equal(1, pipelined);
        Assert.Equal(contents[0], File.ReadAllBytes(Download("f0.bin")));
        Assert.Equal(contents[1], File.ReadAllBytes(Download("f1.bin")));
        Assert.Equal(Convert.ToHexString(SHA256.HashData(contents[1])), second.Sha256);
    }

    [Fact]
    public async Task Many_small_and_empty_files_one_after_another_arrive_intact_over_one_connection()
    {
        string[] names = ["first.bin", "empty1.bin", "small.bin", "empty2.bin", "piece.bin"];
        string[] hashes =
        [
            TestFiles.WriteRandom(Share(names[0]), 100), TestFiles.WriteRandom(Share(names[1]), 0), TestFiles.WriteRandom(Share(names[2]), 4096),
            TestFiles.WriteRandom(Share(names[3]), 0), TestFiles.WriteRandom(Share(names[4]), ProtocolConstants.PieceSize + 1),
        ];
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader();

        foreach (string name in names)
        {
            await downloader.DownloadAsync(Host, server.Port, name, Download(name), false, null, CancellationToken.None);
        }

        Assert.Equal(hashes, names.Select(n => TestFiles.Sha256(Download(n))));
        Assert.Equal(1, server.Statistics.TotalConnections);
        Assert.Equal(names.Select(Download).Order(), TestFiles.Leftovers(Downloads).Order());
    }

    [Fact]
    public async Task A_destination_folder_removed_between_two_downloads_is_made_again()
    {
        string first = TestFiles.WriteRandom(Share("first.bin"), 4096);
        string second = TestFiles.WriteRandom(Share("second.bin"), 2 * ProtocolConstants.PieceSize);
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader();
        await downloader.DownloadAsync(Host, server.Port, "first.bin", Download("sub/first.bin"), false, null, CancellationToken.None);
        Assert.Equal(first, TestFiles.Sha256(Download("sub/first.bin")));

        Directory.Delete(Download("sub"), recursive: true);
        await downloader.DownloadAsync(Host, server.Port, "second.bin", Download("sub/second.bin"), false, null, CancellationToken.None);

        Assert.Equal(second, TestFiles.Sha256(Download("sub/second.bin")));
        Assert.Equal([Download("sub"), Download("sub/second.bin")], TestFiles.Leftovers(Downloads).Order());
    }

    [Fact]
    public async Task A_100_MiB_file_arrives_intact()
    {
        string hash = TestFiles.WriteRandom(Share("big.bin"), 100L * TestFiles.MiB);
        FileShareServer server = StartServer();

        await NewDownloader().DownloadAsync(Host, server.Port, "big.bin", Download("big.bin"), false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("big.bin")));
        await Eventually.TrueAsync(() => server.Statistics.BytesSent == 100L * TestFiles.MiB, "the server counted every byte sent");
    }

    [Theory]
    [InlineData("with space.txt")]
    [InlineData("naïve file ✓.txt")]
    [InlineData("日本語 フォルダ/データ 1.bin")]
    [InlineData("emoji 🚀/🎉.dat")]
    public async Task Names_with_spaces_and_non_ascii_characters_download_intact(string name)
    {
        string hash = TestFiles.WriteRandom(Share(name), 70_000);
        FileShareServer server = StartServer();
        string destination = SharePath.ResolveDestination(Downloads, name);

        await NewDownloader().DownloadAsync(Host, server.Port, name, destination, false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(destination));
    }

    [Fact]
    public async Task The_downloaded_file_keeps_the_servers_last_write_time()
    {
        File.WriteAllText(Share("dated.txt"), "old news");
        var written = new DateTime(2001, 9, 9, 1, 46, 40, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(Share("dated.txt"), written);
        FileShareServer server = StartServer();

        await NewDownloader().DownloadAsync(Host, server.Port, "dated.txt", Download("dated.txt"), false, null, CancellationToken.None);

        Assert.Equal(written, File.GetLastWriteTimeUtc(Download("dated.txt")));
    }

    [Fact]
    public async Task A_missing_file_fails_with_not_found_naming_file_and_server_and_leaves_nothing()
    {
        FileShareServer server = StartServer();

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, server.Port, "sub/missing.bin", Download("missing.bin"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
        Assert.Equal("sub/missing.bin", error.RemotePath);
        Assert.Contains("sub/missing.bin", error.Message);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Theory]
    [InlineData("../outside/secret.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../outside/secret.txt")]
    [InlineData("leak.txt")]
    [InlineData("escape/secret.txt")]
    public async Task Paths_leading_out_of_the_share_are_refused_and_leave_nothing(string path)
    {
        string outside = Temp.Create("outside");
        File.WriteAllText(Path.Join(outside, "secret.txt"), "secret");
        File.CreateSymbolicLink(Share("leak.txt"), Path.Join(outside, "secret.txt"));
        Directory.CreateSymbolicLink(Share("escape"), outside);
        FileShareServer server = StartServer();

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, server.Port, path, Download("secret.txt"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.PathRefused, error.Kind);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task An_existing_destination_is_kept_unless_overwrite_is_asked_for()
    {
        File.WriteAllText(Share("f.txt"), "new");
        File.WriteAllText(Download("f.txt"), "mine");
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader();

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            downloader.DownloadAsync(Host, server.Port, "f.txt", Download("f.txt"), false, null, CancellationToken.None));
        Assert.Equal(FileShareErrorKind.DestinationExists, error.Kind);
        Assert.Equal("mine", File.ReadAllText(Download("f.txt")));

        await downloader.DownloadAsync(Host, server.Port, "f.txt", Download("f.txt"), true, null, CancellationToken.None);
        Assert.Equal("new", File.ReadAllText(Download("f.txt")));
        Assert.Equal([Download("f.txt")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task Sixteen_concurrent_downloads_from_one_server_all_arrive_intact()
    {
        string[] hashes = Enumerable.Range(0, 16).Select(i => TestFiles.WriteRandom(Share($"f{i}.bin"), 1_500_000 + i * 7919)).ToArray();
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader();

        await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() =>
            downloader.DownloadAsync(Host, server.Port, $"f{i}.bin", Download($"f{i}.bin"), false, null, CancellationToken.None))));

        Assert.All(Enumerable.Range(0, 16), i => Assert.Equal(hashes[i], TestFiles.Sha256(Download($"f{i}.bin"))));
        Assert.Equal(16, TestFiles.Leftovers(Downloads).Length);
    }

    [Fact]
    public async Task Nothing_listening_fails_as_a_connection_failure_naming_the_server()
    {
        int port = FreePort();

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, port, "x", Download("x"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ConnectionFailed, error.Kind);
        Assert.Contains(EndpointOf(port), error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_server_that_dies_mid_transfer_fails_as_incomplete_and_leaves_nothing()
    {
        using var server = ScriptedServer.SendingPartOfAFile(10_000, 4_000, (socket, _, _) =>
        {
            socket.Shutdown(System.Net.Sockets.SocketShutdown.Both);
            return Task.CompletedTask;
        });

        var error = await Assert.ThrowsAsync<FileShareException>(() => DownloadWithin(server.Port, "cut.bin", ClientOptions()));

        Assert.Equal(FileShareErrorKind.IncompleteTransfer, error.Kind);
        Assert.Contains($"{4_000:N0} of {10_000:N0}", error.Message);
        Assert.Contains($"'cut.bin'", error.Message);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
        await server.Completion;
    }

    [Fact]
    public async Task A_server_that_goes_silent_mid_transfer_times_out_and_leaves_nothing()
    {
        using var server = ScriptedServer.SendingPartOfAFile(10_000, 4_000, (_, _, ct) => Task.Delay(Timeout.Infinite, ct));
        var clock = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<FileShareException>(() => DownloadWithin(server.Port, "stuck.bin", ClientOptions(readTimeout: TimeSpan.FromSeconds(1))));

        Assert.Equal(FileShareErrorKind.Timeout, error.Kind);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(8));
        Assert.Contains("'stuck.bin'", error.Message);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_server_that_never_answers_the_request_times_out()
    {
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            await ScriptedServer.AcceptRequestAsync(stream, channel, ct);
            await Task.Delay(Timeout.Infinite, ct);
        });

        var error = await Assert.ThrowsAsync<FileShareException>(() => DownloadWithin(server.Port, "x.bin", ClientOptions(readTimeout: TimeSpan.FromSeconds(1))));

        Assert.Equal(FileShareErrorKind.Timeout, error.Kind);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Theory]
    [InlineData(255, 'x')]
    [InlineData(252, '\u6587')]
    public async Task A_file_whose_name_is_as_long_as_the_file_system_allows_downloads(int nameBytes, char letter)
    {
        string name = new string(letter, nameBytes / System.Text.Encoding.UTF8.GetByteCount([letter]));
        string hash = TestFiles.WriteRandom(Share(name), 3 * TestFiles.MiB);
        FileShareServer server = StartServer();

        DownloadResult result = await NewDownloader().DownloadAsync(Host, server.Port, name, Download(name), false, null, CancellationToken.None);

        Assert.Equal(hash, result.Sha256);
        Assert.Equal(hash, TestFiles.Sha256(Download(name)));
        Assert.Equal([Download(name)], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_download_in_progress_lives_in_a_hidden_partial_file_that_cancelling_removes()
    {
        using var server = ScriptedServer.SendingPartOfAFile(10_000, 4_000, (_, _, ct) => Task.Delay(Timeout.Infinite, ct));
        var progress = new TransferProgress();
        using var cancel = new CancellationTokenSource();
        Task download = NewDownloader().DownloadAsync(Host, server.Port, "x.bin", Download("x.bin"), false, progress, cancel.Token);
        await Eventually.TrueAsync(() => progress.BytesReceived == 4_000, "the first bytes arrived");
        Assert.Equal([Download(".x.bin.partial")], TestFiles.Leftovers(Downloads));

        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Eventually.WithinAsync(download, TimeSpan.FromSeconds(10), "the cancelled download"));
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    private Task<DownloadResult> DownloadWithin(int port, string name, FileShareClientOptions options) =>
        Eventually.WithinAsync(
            NewDownloader(options).DownloadAsync(Host, port, name, Download(name), false, null, CancellationToken.None),
            TimeSpan.FromSeconds(15),
            $"downloading {name}");

    private static int FreePort()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        return ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
    }
}

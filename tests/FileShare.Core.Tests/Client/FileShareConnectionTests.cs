using System.Net;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Tests.Client;

public sealed class FileShareConnectionTests : ServerTestBase
{
    private readonly string _outside;

    public FileShareConnectionTests()
    {
        _outside = Temp.Create("outside");
        File.WriteAllText(Path.Join(_outside, "secret.txt"), "secret");
        File.WriteAllText(Share("a.txt"), "aaa");
        File.WriteAllBytes(Share("b.bin"), new byte[1234]);
        File.WriteAllText(Share(".c.txt.partial"), "half a download");
        Directory.CreateDirectory(Share("sub/deeper"));
        File.WriteAllText(Share("sub/x.txt"), "x");
        File.WriteAllText(Share("sub/deeper/y.txt"), "yy");
        File.CreateSymbolicLink(Share("leak.txt"), Path.Join(_outside, "secret.txt"));
        Directory.CreateSymbolicLink(Share("escape"), _outside);
        File.CreateSymbolicLink(Share("sub/alias.txt"), Share("a.txt"));
    }

    [Fact]
    public async Task A_plain_listing_has_only_the_top_level_files()
    {
        FileShareConnection connection = await ConnectAsync(StartServer());

        IReadOnlyList<RemoteEntry> entries = await connection.ListAsync("", recursive: false, CancellationToken.None);

        Assert.Equal(["a.txt", "b.bin"], entries.Select(e => e.Name).Order(StringComparer.Ordinal));
        RemoteEntry b = entries.Single(e => e.Name == "b.bin");
        Assert.Equal(1234, b.Length);
        Assert.Equal(File.GetLastWriteTimeUtc(Share("b.bin")), b.LastWriteTimeUtc);
    }

    [Fact]
    public async Task A_recursive_listing_names_nested_files_with_forward_slashes_and_skips_links_leading_out()
    {
        FileShareConnection connection = await ConnectAsync(StartServer());

        IReadOnlyList<RemoteEntry> entries = await connection.ListAsync("", recursive: true, CancellationToken.None);

        Assert.Equal(["a.txt", "b.bin", "sub/alias.txt", "sub/deeper/y.txt", "sub/x.txt"], entries.Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.Equal(2, entries.Single(e => e.Name == "sub/deeper/y.txt").Length);
    }

    [Fact]
    public async Task Listing_a_subfolder_prefixes_names_with_it()
    {
        FileShareConnection connection = await ConnectAsync(StartServer());

        IReadOnlyList<RemoteEntry> entries = await connection.ListAsync("sub/deeper", recursive: false, CancellationToken.None);

        Assert.Equal("sub/deeper/y.txt", Assert.Single(entries).Name);
    }

    [Fact]
    public async Task A_listing_too_large_for_one_frame_arrives_complete()
    {
        string many = Directory.CreateDirectory(Share("many")).FullName;
        string[] names = Enumerable.Range(0, 3000).Select(i => $"file-with-a-longish-name-{i:D5}.dat").ToArray();
        foreach (string name in names)
        {
            File.Create(Path.Join(many, name)).Dispose();
        }

        FileShareConnection connection = await ConnectAsync(StartServer());
        IReadOnlyList<RemoteEntry> entries = await connection.ListAsync("many", recursive: false, CancellationToken.None);

        int wireBytes = names.Sum(n => Messages.EntrySize(new RemoteEntry("many/" + n, 0, default)));
        Assert.True(wireBytes > 2 * ProtocolConstants.ListChunkTarget, "the listing should span several frames");
        Assert.Equal(names.Select(n => "many/" + n), entries.Select(e => e.Name).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("missing", FileShareErrorKind.NotFound)]
    [InlineData("a.txt", FileShareErrorKind.NotAFile)]
    [InlineData("..", FileShareErrorKind.PathRefused)]
    [InlineData("escape", FileShareErrorKind.PathRefused)]
    public async Task Listing_what_is_not_a_shared_folder_fails_with_a_reason(string folder, FileShareErrorKind kind)
    {
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.ListAsync(folder, recursive: false, CancellationToken.None));

        Assert.Equal(kind, error.Kind);
        Assert.Equal(EndpointOf(server.Port), error.Endpoint);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.True(connection.IsReusable);
    }

    [Fact]
    public async Task Stat_reports_length_and_last_write_time()
    {
        FileShareConnection connection = await ConnectAsync(StartServer());

        RemoteEntry entry = await connection.StatAsync("sub/deeper/y.txt", CancellationToken.None);

        Assert.Equal(("sub/deeper/y.txt", 2L, EntryKind.File), (entry.Name, entry.Length, entry.Kind));
        Assert.Equal(File.GetLastWriteTimeUtc(Share("sub/deeper/y.txt")), entry.LastWriteTimeUtc);
    }

    [Theory]
    [InlineData("nope.txt", FileShareErrorKind.NotFound)]
    [InlineData("sub/nope.txt", FileShareErrorKind.NotFound)]
    [InlineData(".c.txt.partial", FileShareErrorKind.NotFound)]
    [InlineData("sub", FileShareErrorKind.NotAFile)]
    [InlineData("../outside/secret.txt", FileShareErrorKind.PathRefused)]
    [InlineData("/etc/passwd", FileShareErrorKind.PathRefused)]
    [InlineData("leak.txt", FileShareErrorKind.PathRefused)]
    [InlineData("escape/secret.txt", FileShareErrorKind.PathRefused)]
    public async Task Stat_of_what_may_not_be_read_fails_naming_the_file_and_server(string path, FileShareErrorKind kind)
    {
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.StatAsync(path, CancellationToken.None));

        Assert.Equal(kind, error.Kind);
        Assert.Equal(path, error.RemotePath);
        Assert.Contains($"'{path}'", error.Message);
        Assert.Contains(EndpointOf(server.Port), error.Message);
    }

    [Theory]
    [InlineData(0, 10, 10)]
    [InlineData(1000, 1, 1)]
    [InlineData(TestFiles.MiB - 3, 7, 7)]
    [InlineData(5, -1, 3 * TestFiles.MiB - 5)]
    [InlineData(3 * TestFiles.MiB - 4, 100, 4)]
    [InlineData(3 * TestFiles.MiB, -1, 0)]
    [InlineData(3 * TestFiles.MiB, 0, 0)]
    public async Task A_ranged_read_returns_exactly_the_bytes_asked_for_clipped_at_the_end(long offset, long length, long expectedCount)
    {
        TestFiles.WriteRandom(Share("three.bin"), 3 * TestFiles.MiB);
        byte[] source = File.ReadAllBytes(Share("three.bin"));
        FileShareConnection connection = await ConnectAsync(StartServer());

        byte[] received = await ReadRangeAsync(connection, "three.bin", offset, length);

        Assert.Equal(expectedCount, received.Length);
        Assert.Equal(source.AsSpan((int)offset, (int)expectedCount).ToArray(), received);
        Assert.True(connection.IsReusable);
    }

    [Fact]
    public async Task Many_ranges_in_a_row_on_one_connection_stay_in_step()
    {
        TestFiles.WriteRandom(Share("three.bin"), 3 * TestFiles.MiB);
        byte[] source = File.ReadAllBytes(Share("three.bin"));
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        for (int i = 0; i < 24; i++)
        {
            long offset = i * 131_071L;
            long length = 65_537 + i;
            byte[] received = await ReadRangeAsync(connection, "three.bin", offset, length);
            Assert.True(source.AsSpan((int)offset, (int)length).SequenceEqual(received), $"range {i} differs");
        }

        Assert.Equal(1, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task A_range_starting_past_the_end_is_refused_as_a_changed_file_and_the_connection_stays_usable()
    {
        File.WriteAllBytes(Share("ten.bin"), new byte[10]);
        FileShareConnection connection = await ConnectAsync(StartServer());

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.RequestRangeAsync("ten.bin", 11, -1, CancellationToken.None));

        // The client asks only within a length it was told: a file shorter than that now has changed (shrunk).
        Assert.Equal(FileShareErrorKind.RemoteFileChanged, error.Kind);
        Assert.Contains("does not fit a file of 10 bytes", error.Message);
        Assert.Equal(10, (await connection.StatAsync("ten.bin", CancellationToken.None)).Length);
    }

    [Fact]
    public async Task Reading_a_missing_file_fails_with_not_found_and_the_connection_stays_usable()
    {
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.RequestRangeAsync("gone.bin", 0, -1, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
        Assert.Contains("'gone.bin'", error.Message);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.True(connection.IsReusable);
        Assert.Equal("aaa", await ReadTextAsync(connection, "a.txt"));
    }

    [Fact]
    public async Task Listing_a_share_whose_folder_was_removed_names_the_shared_folder()
    {
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);
        Directory.Delete(Share(""), recursive: true);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.ListAsync("", recursive: false, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
        Assert.StartsWith($"The shared folder of {EndpointOf(server.Port)}: not found", error.Message);
    }

    [Fact]
    public async Task Hash_and_read_sent_together_give_the_digest_then_the_whole_file_and_leave_the_connection_in_step()
    {
        byte[] content = new byte[(2 * ProtocolConstants.PieceSize) + 7];
        Random.Shared.NextBytes(content);
        File.WriteAllBytes(Share("two.bin"), content);
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        (FileDigest digest, PieceMap? held, RangeReply range) = await connection.HashAndReadAsync("two.bin", CancellationToken.None);
        byte[] arrived = await ReceiveAsync(connection, "two.bin");

        Assert.Equal(System.Security.Cryptography.SHA256.HashData(content), digest.Sha256);
        Assert.Null(held);
        Assert.Equal((content.LongLength, content.LongLength), (range.DataLength, range.FileLength));
        Assert.Equal(content, arrived);
        Assert.Equal("aaa", await ReadTextAsync(connection, "a.txt"));
        Assert.Equal(1, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task Hash_and_read_sent_together_for_a_missing_file_fail_with_not_found_and_the_connection_stays_usable()
    {
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.HashAndReadAsync("gone.bin", CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        Assert.True(connection.IsReusable);
        Assert.Equal("aaa", await ReadTextAsync(connection, "a.txt"));
    }

    [Fact]
    public async Task Requests_sent_ahead_while_a_body_is_pending_are_answered_in_order_after_it()
    {
        TestFiles.WriteRandom(Share("first.bin"), 4096);
        TestFiles.WriteRandom(Share("second.bin"), 5000);
        byte[] first = File.ReadAllBytes(Share("first.bin"));
        byte[] second = File.ReadAllBytes(Share("second.bin"));
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        await connection.HashAndReadAsync("first.bin", CancellationToken.None);
        await connection.SendHashAndReadAheadAsync("second.bin", CancellationToken.None);
        Assert.False(connection.IsReusable);
        byte[] firstArrived = await ReceiveAsync(connection, "first.bin");
        (FileDigest digest, _, RangeReply range) = await connection.HashAndReadAsync("second.bin", CancellationToken.None);
        byte[] secondArrived = await ReceiveAsync(connection, "second.bin");

        Assert.Equal(first, firstArrived);
        Assert.Equal(second, secondArrived);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(second), digest.Sha256);
        Assert.Equal(second.LongLength, range.DataLength);
        Assert.True(connection.IsReusable);
        Assert.Equal("aaa", await ReadTextAsync(connection, "a.txt"));
        Assert.Equal(1, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task A_refusal_of_requests_sent_ahead_comes_with_their_answers_and_leaves_the_connection_in_step()
    {
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);
        await connection.HashAndReadAsync("a.txt", CancellationToken.None);
        await connection.SendHashAndReadAheadAsync("gone.bin", CancellationToken.None);

        // Nothing else may be asked before the answers sent ahead are taken.
        await Assert.ThrowsAsync<InvalidOperationException>(() => connection.StatAsync("a.txt", CancellationToken.None));
        Assert.Equal("aaa"u8.ToArray(), await ReceiveAsync(connection, "a.txt"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => connection.HashAndReadAsync("b.bin", CancellationToken.None));
        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.HashAndReadAsync("gone.bin", CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
        Assert.Contains("gone.bin", error.Message);
        Assert.True(connection.IsReusable);
        Assert.Equal("aaa", await ReadTextAsync(connection, "a.txt"));
    }

    private async Task<byte[]> ReceiveAsync(FileShareConnection connection, string name)
    {
        string target = Download(name);
        using (SafeFileHandle handle = File.OpenHandle(target, FileMode.CreateNew, FileAccess.Write))
        {
            await connection.ReceiveRangeAsync(name, handle, 0, null, CancellationToken.None);
        }

        return File.ReadAllBytes(target);
    }

    [Fact]
    public async Task A_read_reply_promising_more_than_was_asked_for_is_a_protocol_error()
    {
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            Frame request = await ScriptedServer.AcceptRequestAsync(stream, channel, ct);
            await ScriptedServer.PromiseAsync(channel, request.RequestId, 1L << 40, ct);
        });
        using FileShareConnection connection = await FileShareConnection.ConnectAsync(Host, server.Port, ClientOptions(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.RequestRangeAsync("a.bin", 0, 100, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ProtocolError, error.Kind);
        Assert.Contains("1,099,511,627,776", error.Message);
        Assert.False(connection.IsReusable);
    }

    [Fact]
    public async Task A_request_before_the_promised_bytes_are_taken_is_refused_locally()
    {
        FileShareConnection connection = await ConnectAsync(StartServer());
        await connection.RequestRangeAsync("a.txt", 0, -1, CancellationToken.None);

        Assert.False(connection.IsReusable);
        await Assert.ThrowsAsync<InvalidOperationException>(() => connection.StatAsync("a.txt", CancellationToken.None));
    }

    [Fact]
    public async Task Over_ipv6_loopback_errors_name_the_server_in_brackets()
    {
        var server = new FileShareServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddress = IPAddress.IPv6Loopback });
        await using (server)
        {
            server.Start();
            using FileShareConnection connection = await FileShareConnection.ConnectAsync("::1", server.Port, ClientOptions(), CancellationToken.None);

            Assert.Equal("aaa", await ReadTextAsync(connection, "a.txt"));
            var error = await Assert.ThrowsAsync<FileShareException>(() => connection.StatAsync("nope", CancellationToken.None));
            Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
            Assert.Equal($"[::1]:{server.Port}", error.Endpoint);
        }
    }

    [Fact]
    public async Task Connecting_to_a_server_of_the_original_program_says_it_cannot_list()
    {
        (PythonPeer peer, int port) = await PythonPeer.StartSeedServerAsync(ShareRoot);
        Track(peer);

        var error = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync(Host, port, ClientOptions(), CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotSupportedBySeedServer, error.Kind);
        Assert.Equal(EndpointOf(port), error.Endpoint);
        Assert.Contains(EndpointOf(port), error.Message);
    }

    [Fact]
    public async Task Connecting_to_something_that_is_not_a_file_share_server_is_a_protocol_error()
    {
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            await stream.ReadExactlyAsync(new byte[ProtocolConstants.HelloLength], ct);
            await stream.WriteAsync("HTTP/1.1 400 Bad Request\r\n\r\n"u8.ToArray(), ct);
        });

        var error = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync(Host, server.Port, ClientOptions(), CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ProtocolError, error.Kind);
        Assert.Contains(EndpointOf(server.Port), error.Message);
    }

    [Fact]
    public async Task A_server_listing_a_name_that_breaks_the_path_rule_is_refused()
    {
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            Frame request = await ScriptedServer.AcceptRequestAsync(stream, channel, ct);
            SpanWriter writer = channel.BeginFrame(256);
            Messages.WriteListReplyPrefix(ref writer, isLast: true, count: 1);
            Messages.WriteEntry(ref writer, new RemoteEntry("../../.bashrc", 1, DateTime.UtcNow));
            await channel.SendFrameAsync(FrameType.ListReply, request.RequestId, writer.Position, ct);
            await Task.Delay(Timeout.Infinite, ct);
        });
        using FileShareConnection connection = await FileShareConnection.ConnectAsync(Host, server.Port, ClientOptions(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<FileShareException>(() => connection.ListAsync("", recursive: true, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ProtocolError, error.Kind);
        Assert.Equal("../../.bashrc", error.RemotePath);
        Assert.False(connection.IsReusable);
    }

    /// <summary>Requests a range, receives it into a scratch file and returns its bytes, checking they match the promise.</summary>
    private async Task<byte[]> ReadRangeAsync(FileShareConnection connection, string path, long offset = 0, long length = -1)
    {
        RangeReply reply = await connection.RequestRangeAsync(path, offset, length, CancellationToken.None);
        string target = Download(Guid.NewGuid().ToString("N"));
        using (SafeFileHandle handle = File.OpenHandle(target, FileMode.CreateNew, FileAccess.Write))
        {
            await connection.ReceiveRangeAsync(path, handle, 0, null, CancellationToken.None);
        }

        byte[] bytes = File.ReadAllBytes(target);
        File.Delete(target);
        Assert.Equal(reply.DataLength, bytes.Length);
        return bytes;
    }

    private async Task<string> ReadTextAsync(FileShareConnection connection, string path) =>
        System.Text.Encoding.UTF8.GetString(await ReadRangeAsync(connection, path));
}

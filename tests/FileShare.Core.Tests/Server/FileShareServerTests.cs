using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Tests.Server;

public sealed class FileShareServerTests : ServerTestBase
{
    // Exit codes documented in tests/peers/seed_client.py.
    private const int SeedClientNotFound = 2;
    private const int SeedClientServerError = 3;

    [Fact]
    public async Task Stopping_frees_the_port_so_a_new_server_can_bind_it_at_once()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer first = StartServer();
        int port = first.Port;
        await NewDownloader().DownloadAsync(Host, port, "a.txt", Download("1.txt"), false, null, CancellationToken.None);

        // The pooled connection is still open, so the server closes first and its side lingers in TIME_WAIT on this
        // port: the case that makes a rebind fail when the listener is set up carelessly.
        await first.StopAsync(TimeSpan.FromSeconds(5));
        FileShareServer second = StartServer(port);

        Assert.Equal(port, second.Port);
        await NewDownloader().DownloadAsync(Host, port, "a.txt", Download("2.txt"), false, null, CancellationToken.None);
        Assert.Equal("a", File.ReadAllText(Download("2.txt")));
        Assert.True(first.Completion.IsCompleted);
    }

    [Fact]
    public void Starting_on_a_port_in_use_fails_with_port_in_use_naming_the_port()
    {
        FileShareServer first = StartServer();

        var error = Assert.Throws<FileShareException>(() => StartServer(first.Port));

        Assert.Equal(FileShareErrorKind.PortInUse, error.Kind);
        Assert.Contains(first.Port.ToString(), error.Message);
        Assert.EndsWith($":{first.Port}", error.Endpoint);
    }

    [Fact]
    public async Task Stopping_with_a_short_drain_cuts_a_transfer_in_flight_and_the_client_fails_cleanly()
    {
        const long length = 256L * TestFiles.MiB;
        MakeSparseFile("huge.bin", length);
        FileShareServer server = StartServer();
        var progress = new TransferProgress();
        Task<DownloadResult> download = SlowDownloader().DownloadAsync(Host, server.Port, "huge.bin", Download("huge.bin"), false, progress, CancellationToken.None);
        // A verified piece recorded: a download cut before its first keeps nothing, as there is nothing to resume.
        await Eventually.TrueAsync(() => File.Exists(Download(".huge.bin.partial.state")), "a verified piece is recorded");

        var clock = Stopwatch.StartNew();
        await Eventually.WithinAsync(server.StopAsync(TimeSpan.FromMilliseconds(100)), TimeSpan.FromSeconds(10), "stopping the server");

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"stop took {clock.Elapsed}");
        var error = await Assert.ThrowsAsync<FileShareException>(() => Eventually.WithinAsync(download, TimeSpan.FromSeconds(30), "the cut download"));
        Assert.Contains(error.Kind, new[] { FileShareErrorKind.IncompleteTransfer, FileShareErrorKind.ConnectionFailed });
        Assert.Contains(EndpointOf(server.Port), error.Message);

        // Only the hidden partial file and its state record stay, for a later download to resume from.
        Assert.Equal([Download(".huge.bin.partial"), Download(".huge.bin.partial.state")], TestFiles.Leftovers(Downloads).Order());
    }

    [Fact]
    public async Task Stopping_with_a_long_drain_refuses_new_clients_but_lets_a_transfer_in_flight_finish()
    {
        string hash = TestFiles.WriteRandom(Share("big.bin"), 64L * TestFiles.MiB);
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);
        await connection.RequestRangeAsync("big.bin", 0, -1, CancellationToken.None);

        // Nothing is read yet, so the server is stuck sending: 64 MiB is more than Linux lets both socket buffers hold.
        Task stopping = server.StopAsync(TimeSpan.FromSeconds(30));

        var refused = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync(Host, server.Port, ClientOptions(), CancellationToken.None));
        Assert.Equal(FileShareErrorKind.ConnectionFailed, refused.Kind);
        Assert.False(stopping.IsCompleted);
        using (SafeFileHandle target = File.OpenHandle(Download("big.bin"), FileMode.CreateNew, FileAccess.Write))
        {
            await Eventually.WithinAsync(connection.ReceiveRangeAsync("big.bin", target, 0, null, CancellationToken.None), TimeSpan.FromSeconds(30), "the draining transfer");
        }

        Assert.Equal(hash, TestFiles.Sha256(Download("big.bin")));
        await Eventually.WithinAsync(stopping, TimeSpan.FromSeconds(10), "the stop after the drain");
    }

    [Fact]
    public async Task A_stop_without_drain_during_a_long_draining_stop_cuts_the_transfers_at_once()
    {
        TestFiles.WriteRandom(Share("big.bin"), 64L * TestFiles.MiB);
        FileShareServer server = StartServer(sendTimeout: TimeSpan.FromMinutes(5));
        FileShareConnection connection = await ConnectAsync(server);
        await connection.RequestRangeAsync("big.bin", 0, -1, CancellationToken.None);
        await Eventually.TrueAsync(() => server.Statistics.BytesSent > 0, "the transfer started");

        // Nothing is read, so the transfer stays in flight: a patient stop (Stop-Job), then an impatient one (-Force).
        Task draining = server.StopAsync(TimeSpan.FromMinutes(5));
        Task cutting = server.StopAsync(TimeSpan.Zero);

        await Eventually.WithinAsync(cutting, TimeSpan.FromSeconds(15), "the stop without drain");
        await Eventually.WithinAsync(draining, TimeSpan.FromSeconds(15), "the patient stop, ended by the impatient one");
        Assert.Equal(0, server.Statistics.ActiveConnections);
    }

    [Fact]
    public async Task Stopping_serves_the_rest_of_a_file_asked_for_in_parts_and_nothing_new()
    {
        // A rate-capped or multi-source download asks for one file in several reads on one connection.
        string hash = TestFiles.WriteRandom(Share("parts.bin"), 48L * TestFiles.MiB);
        TestFiles.WriteRandom(Share("other.bin"), 1024);
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);
        const long Part = 16L * TestFiles.MiB;
        await connection.RequestRangeAsync("parts.bin", 0, Part, CancellationToken.None);

        Task stopping = server.StopAsync(TimeSpan.FromSeconds(30));
        Assert.False(stopping.IsCompleted);
        using (SafeFileHandle target = File.OpenHandle(Download("parts.bin"), FileMode.CreateNew, FileAccess.Write, preallocationSize: 3 * Part))
        {
            for (long offset = 0; offset < 3 * Part; offset += Part)
            {
                if (offset > 0)
                {
                    RangeReply reply = await connection.RequestRangeAsync("parts.bin", offset, Part, CancellationToken.None);
                    Assert.Equal(Part, reply.DataLength);
                }

                await Eventually.WithinAsync(connection.ReceiveRangeAsync("parts.bin", target, offset, null, CancellationToken.None), TimeSpan.FromSeconds(30), $"the part at {offset}");
            }
        }

        Assert.Equal(hash, TestFiles.Sha256(Download("parts.bin")));
        // The file is done, so the connection closes: another file is not started while the server stops.
        await Eventually.WithinAsync(stopping, TimeSpan.FromSeconds(10), "the stop once the file was done");
        var refused = await Assert.ThrowsAsync<FileShareException>(() => connection.RequestRangeAsync("other.bin", 0, -1, CancellationToken.None));
        Assert.Equal(FileShareErrorKind.ConnectionFailed, refused.Kind);
    }

    [Fact]
    public async Task A_client_that_stops_reading_mid_transfer_is_cut_off_after_the_send_timeout()
    {
        MakeSparseFile("huge.bin", 256L * TestFiles.MiB);
        // No minimum data rate: the send timeout is the only thing left that can cut a client that takes nothing.
        FileShareServer server = StartServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddress = IPAddress.Loopback, SendTimeout = TimeSpan.FromMilliseconds(500), MinDataRate = 0 });
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;
        FileShareConnection stalled = await ConnectAsync(server);
        await stalled.RequestRangeAsync("huge.bin", 0, -1, CancellationToken.None);

        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "the server gave up on the stalled client");
        // The read was cut by the send timeout (logged as such, with what little the client took), not refused or finished.
        await Eventually.TrueAsync(() => !records.IsEmpty, "the read is logged");
        RequestLogRecord cut = Assert.Single(records);
        Assert.Equal((RequestKind.Read, "huge.bin"), (cut.Request, cut.Path));
        Assert.StartsWith("Aborted: ", cut.Outcome);
        Assert.Contains("send timeout", cut.Outcome);
        Assert.True(cut.Bytes < 256L * TestFiles.MiB, $"the log says {cut.Bytes:N0} bytes were sent: the whole file");
    }

    [Fact]
    public async Task A_stopped_server_refuses_to_start_again_and_leaves_its_port_free()
    {
        FileShareServer server = StartServer();
        int port = server.Port;
        await server.StopAsync(TimeSpan.Zero);

        Assert.Throws<InvalidOperationException>(server.Start);
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, port);
        listener.Start();
    }

    [Fact]
    public async Task A_connection_that_never_says_hello_is_logged_but_not_counted_as_a_request()
    {
        FileShareServer server = StartServer(handshakeTimeout: TimeSpan.FromMilliseconds(200));
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;
        using var silent = new System.Net.Sockets.TcpClient();
        await silent.ConnectAsync(IPAddress.Loopback, server.Port);

        await Eventually.TrueAsync(() => !records.IsEmpty, "the silent connection is logged");
        Assert.Equal((RequestKind.Handshake, "TimedOut"), (Assert.Single(records).Request, records.Single().Outcome));
        Assert.Equal(0, server.Statistics.Requests);
    }

    [Fact]
    public async Task A_client_that_asks_for_listings_and_never_reads_them_is_cut_off_after_the_send_timeout()
    {
        // About 110 KB of listing per request: twenty unread replies are far more than the socket buffers hold.
        for (int i = 0; i < 500; i++)
        {
            File.WriteAllBytes(Share($"{i:D4}-{new string('n', 200)}.txt"), []);
        }

        FileShareServer server = StartServer(sendTimeout: TimeSpan.FromMilliseconds(500));
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;
        using RawPeer greedy = await RawPeer.HandshakeAsync(server.Port, receiveBuffer: 4096);
        byte[] body = new byte[1 + SpanWriter.StringSize("")];
        var writer = new SpanWriter(body);
        Messages.WriteListRequest(ref writer, "", ListOptions.None);
        for (uint id = 1; id <= 200; id++)
        {
            await greedy.SendAsync(RawPeer.Frame(FrameType.ListRequest, id, body));
        }

        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "the server gave up on the client that never reads");
        RequestLogRecord cut = Assert.Single(records, r => r.Outcome.StartsWith("Aborted", StringComparison.Ordinal));
        Assert.Equal(RequestKind.List, cut.Request);
        Assert.Contains("send timeout", cut.Outcome);
    }

    [Fact]
    public async Task A_stopped_server_ends_a_first_hash_still_running_and_lets_go_of_the_file()
    {
        MakeSparseFile("huge.bin", 64L << 30);
        FileShareServer server = StartServer();
        FileShareConnection asking = await ConnectAsync(server);
        Task<FileDigest> hashing = asking.HashAsync("huge.bin", CancellationToken.None);
        await Eventually.TrueAsync(() => TestFiles.IsOpenHere(Share("huge.bin")), "the first hash opened the file");

        await Eventually.WithinAsync(server.StopAsync(TimeSpan.Zero), TimeSpan.FromSeconds(10), "the stop");

        await Eventually.TrueAsync(() => !TestFiles.IsOpenHere(Share("huge.bin")), "the file was closed");
        var cut = await Assert.ThrowsAsync<FileShareException>(() => hashing);
        Assert.Equal(FileShareErrorKind.ConnectionFailed, cut.Kind);
    }

    [Fact]
    public async Task A_client_that_leaves_during_a_long_first_hash_is_let_go_at_once_while_the_hash_goes_on_for_the_next()
    {
        // Tens of seconds of hashing: the connection must end long before, at the client's close, not at the hash's end.
        MakeSparseFile("huge.bin", 64L << 30);
        FileShareServer server = StartServer();
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;
        FileShareConnection leaving = await ConnectAsync(server);
        Task<FileDigest> hashing = leaving.HashAsync("huge.bin", CancellationToken.None);
        await Eventually.TrueAsync(() => TestFiles.IsOpenHere(Share("huge.bin")), "the first hash opened the file");

        leaving.Dispose();

        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "the server let go of the client that left");
        RequestLogRecord cut = Assert.Single(records);
        Assert.Equal((RequestKind.Hash, "huge.bin"), (cut.Request, cut.Path));
        Assert.StartsWith("Aborted: ", cut.Outcome);
        Assert.True(TestFiles.IsOpenHere(Share("huge.bin")), "the hash ended with the client that left: the next client would start it over");
        await Assert.ThrowsAnyAsync<Exception>(() => hashing);
    }

    [Fact]
    public async Task A_client_reading_steadily_slower_than_its_chunks_is_not_cut_by_the_send_timeout()
    {
        // The first chunks vanish into socket buffers at once, so the chunk sized after them is more than this reader
        // (about 4 MiB/s) takes within the 500 ms send timeout; it still takes bytes all along, so it is not stalled.
        const long size = 12 * TestFiles.MiB;
        TestFiles.WriteRandom(Share("steady.bin"), size);
        FileShareServer server = StartServer(sendTimeout: TimeSpan.FromMilliseconds(500));
        using RawPeer reader = await RawPeer.ConnectAsync(server.Port);
        // The original protocol: the bare name, then "ok" and every byte of the file up to the server's close.
        await reader.SendAsync("steady.bin"u8.ToArray());

        using var received = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long taken = await LimitTests.ReadSlowlyAsync(reader, bytesPerTick: 64 * 1024, TimeSpan.FromMilliseconds(16), taken: received);

        Assert.Equal(2 + size, taken);
        using var expected = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        expected.AppendData("ok"u8);
        expected.AppendData(File.ReadAllBytes(Share("steady.bin")));
        Assert.Equal(Convert.ToHexString(expected.GetHashAndReset()), Convert.ToHexString(received.GetHashAndReset()));
        Assert.Equal(0, server.Statistics.SlowConnectionsDropped);
    }

    [Fact]
    public async Task A_client_beyond_max_connections_is_told_the_server_is_busy_until_a_slot_frees()
    {
        FileShareServer server = StartServer(maxConnections: 1);
        FileShareConnection first = await ConnectAsync(server);

        var error = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync(Host, server.Port, NoBusyRetry, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.Busy, error.Kind);
        Assert.Contains(EndpointOf(server.Port), error.Message);
        first.Dispose();
        using FileShareConnection later = await ConnectOnceNotBusyAsync(server.Port);
        Assert.True(later.IsReusable);
    }

    [Fact]
    public async Task A_client_turned_away_as_busy_asks_again_and_gets_in_once_a_slot_frees()
    {
        FileShareServer server = StartServer(maxConnections: 1);
        FileShareConnection first = await ConnectAsync(server);
        var retrying = new FileShareClientOptions { ConnectTimeout = TimeSpan.FromSeconds(5), ReadTimeout = TimeSpan.FromSeconds(10), BusyRetryTime = TimeSpan.FromSeconds(10) };

        Task<FileShareConnection> second = FileShareConnection.ConnectAsync(Host, server.Port, retrying, CancellationToken.None);
        await Eventually.TrueAsync(() => server.Statistics.TotalConnections >= 3, "the server turned the second client away twice");
        Assert.False(second.IsCompleted);
        first.Dispose();

        using FileShareConnection later = await Eventually.WithinAsync(second, TimeSpan.FromSeconds(10), "the second client's connection");
        Assert.True(later.IsReusable);
        Assert.Empty(await later.ListAsync("", recursive: false, CancellationToken.None));
    }

    [Fact]
    public async Task A_server_busy_for_longer_than_the_retry_time_is_a_busy_error_saying_how_long_it_was_asked()
    {
        FileShareServer server = StartServer(maxConnections: 1);
        using FileShareConnection first = await ConnectAsync(server);
        var retrying = new FileShareClientOptions { ConnectTimeout = TimeSpan.FromSeconds(5), ReadTimeout = TimeSpan.FromSeconds(10), BusyRetryTime = TimeSpan.FromMilliseconds(600) };

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync(Host, server.Port, retrying, CancellationToken.None));

        Assert.True(clock.Elapsed >= retrying.BusyRetryTime, $"Gave up after {clock.Elapsed.TotalMilliseconds:0} ms, before the retry time was up.");
        Assert.Equal(FileShareErrorKind.Busy, error.Kind);
        Assert.Matches(@"still busy after \d+ attempts over \d+\.\d s", error.Message);
        Assert.True(server.Statistics.TotalConnections >= 3, $"{server.Statistics.TotalConnections} connections: the client should have asked again.");
    }

    [Fact]
    public async Task A_frame_declaring_an_oversized_body_gets_its_connection_closed_and_others_are_still_served()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartServer();
        using NetworkStream garbage = await HandshakeRawAsync(server.Port);

        await garbage.WriteAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xF0, (byte)FrameType.ReadRequest, 0, 0, 0, 1 });

        await AssertClosedByServerAsync(garbage);
        await AssertStillServesAsync(server);
    }

    [Fact]
    public async Task An_unknown_request_type_is_answered_with_bad_request_and_the_connection_goes_on()
    {
        File.WriteAllText(Share("a.txt"), "abc");
        FileShareServer server = StartServer();
        using NetworkStream stream = await HandshakeRawAsync(server.Port);
        using var channel = new FrameChannel(stream);

        await SendAsync(channel, (FrameType)0x42, 9, [1, 2, 3]);
        Frame error = await ReadFrameWithinAsync(channel);
        Messages.ReadStatReply(error.Body.Span, out StatusCode status, out _);
        Assert.Equal((FrameType.ErrorReply, 9u, StatusCode.BadRequest), (error.Type, error.RequestId, status));

        byte[] statBody = new byte[SpanWriter.StringSize("a.txt")];
        var writer = new SpanWriter(statBody);
        Messages.WritePathRequest(ref writer, "a.txt");
        await SendAsync(channel, FrameType.StatRequest, 10, statBody);
        Frame stat = await ReadFrameWithinAsync(channel);
        Assert.Equal(3, Messages.ReadStatReply(stat.Body.Span, out _, out _)!.Length);
    }

    [Fact]
    public async Task A_client_that_does_not_name_piece_algorithms_gets_SHA256_piece_hashes_in_the_original_layout()
    {
        const int Piece = ProtocolConstants.PieceSize;
        TestFiles.WriteRandom(Share("two-pieces.bin"), Piece + 7);
        byte[] content = File.ReadAllBytes(Share("two-pieces.bin"));
        FileShareServer server = StartServer();
        using NetworkStream stream = await HandshakeRawAsync(server.Port);
        using var channel = new FrameChannel(stream);

        byte[] body = new byte[SpanWriter.StringSize("two-pieces.bin")];
        var writer = new SpanWriter(body);
        Messages.WritePathRequest(ref writer, "two-pieces.bin");
        await SendAsync(channel, FrameType.HashRequest, 1, body);
        Frame reply = await ReadFrameWithinAsync(channel);

        FileDigest digest = Messages.ReadHashReply(reply.Body.Span, out StatusCode status, out _)!;
        Assert.Equal(StatusCode.Ok, status);
        Assert.Equal(PieceHashAlgorithm.Sha256, digest.PieceAlgorithm);
        Assert.Equal(SHA256.HashData(content.AsSpan(0, Piece)), digest.PieceHash(0).ToArray());
        Assert.Equal(SHA256.HashData(content.AsSpan(Piece)), digest.PieceHash(1).ToArray());
    }

    [Theory]
    [InlineData(PieceHashAlgorithm.Blake3, HandshakeFeatures.None, ListOptions.WithPieceMaps, "BLAKE3")]
    [InlineData(PieceHashAlgorithm.XxHash128, HandshakeFeatures.PieceAlgorithms, ListOptions.WithPieceMaps | ListOptions.FastPieceHashes, "XXH3-128")]
    public async Task A_partial_copy_is_refused_to_a_client_that_cannot_check_its_recorded_pieces_even_when_it_asks_for_fast_ones(
        PieceHashAlgorithm recorded, HandshakeFeatures features, ListOptions options, string named)
    {
        const int Piece = ProtocolConstants.PieceSize;
        string partial = PartialFile.PathFor(Share("half.bin"));
        TestFiles.WriteRandom(partial, 2L * Piece);
        var digest = new FileDigest(2L * Piece, DateTime.UtcNow, new byte[32], Piece, new byte[2 * ProtocolConstants.Sha256Length], recorded);
        var held = new PieceMap(2);
        held.Set(0);
        new PartialState("half.bin", ["elsewhere:5000"], digest, held).Write(PartialState.PathFor(partial));
        FileShareServer server = StartServer();

        Frame reply = await AskRawAsync(server.Port, features, FrameType.HashRequest, "half.bin", options);

        Messages.ReadHashReply(reply.Body.Span, withPieces: true, namesAlgorithm: features.HasFlag(HandshakeFeatures.PieceAlgorithms), out _, out StatusCode status, out string? message);
        Assert.Equal(StatusCode.PieceNotAvailable, status);
        Assert.Contains(named, message);
    }

    [Fact]
    public async Task Without_the_fast_pieces_feature_a_request_for_them_still_gets_BLAKE3()
    {
        TestFiles.WriteRandom(Share("three.bin"), (2L * ProtocolConstants.PieceSize) + 1);
        FileShareServer server = StartServer();

        Frame reply = await AskRawAsync(server.Port, HandshakeFeatures.PieceAlgorithms, FrameType.HashRequest, "three.bin", ListOptions.WithPieceMaps | ListOptions.FastPieceHashes);

        FileDigest digest = Messages.ReadHashReply(reply.Body.Span, withPieces: true, namesAlgorithm: true, out _, out StatusCode status, out _)!;
        Assert.Equal(StatusCode.Ok, status);
        Assert.Equal(PieceHashAlgorithm.Blake3, digest.PieceAlgorithm);
    }

    [Fact]
    public async Task A_transfer_longer_than_the_idle_timeout_leaves_the_connection_open_for_the_next_request()
    {
        const long Length = 32L * TestFiles.MiB;
        TestFiles.WriteRandom(Share("big.bin"), Length);
        File.WriteAllText(Share("a.txt"), "abc");
        TimeSpan idleTimeout = TimeSpan.FromMilliseconds(300);
        FileShareServer server = StartServer(idleTimeout: idleTimeout);
        using NetworkStream stream = await HandshakeRawAsync(server.Port);
        using var channel = new FrameChannel(stream);

        byte[] read = new byte[SpanWriter.StringSize("big.bin") + 16];
        var writer = new SpanWriter(read);
        Messages.WriteReadRequest(ref writer, "big.bin", 0, -1);
        await SendAsync(channel, FrameType.ReadRequest, 1, read);
        Frame reply = await ReadFrameWithinAsync(channel);
        Assert.Equal(Length, Messages.ReadReadReply(reply.Body.Span, out _, out _)!.Value.DataLength);

        // The server is busy sending (the socket buffers are full) for several idle timeouts before the body is taken.
        await Task.Delay(idleTimeout * 4);
        byte[] sink = new byte[1024 * 1024];
        for (long left = Length; left > 0;)
        {
            left -= await stream.ReadAsync(sink.AsMemory(0, (int)Math.Min(sink.Length, left)));
        }

        byte[] stat = new byte[SpanWriter.StringSize("a.txt")];
        writer = new SpanWriter(stat);
        Messages.WritePathRequest(ref writer, "a.txt");
        await SendAsync(channel, FrameType.StatRequest, 2, stat);
        Frame answer = await ReadFrameWithinAsync(channel);
        Assert.Equal(3, Messages.ReadStatReply(answer.Body.Span, out _, out _)!.Length);
    }

    [Fact]
    public async Task A_malformed_request_body_is_answered_with_bad_request()
    {
        FileShareServer server = StartServer();
        using NetworkStream stream = await HandshakeRawAsync(server.Port);
        using var channel = new FrameChannel(stream);

        await SendAsync(channel, FrameType.ReadRequest, 3, [0, 0, 0, 2, 0xC3, 0x28]);
        Frame reply = await ReadFrameWithinAsync(channel);

        Messages.ReadReadReply(reply.Body.Span, out StatusCode status, out _);
        Assert.Equal((FrameType.ReadReply, 3u, StatusCode.BadRequest), (reply.Type, reply.RequestId, status));
    }

    [Fact]
    public async Task A_hello_with_the_wrong_magic_gets_its_connection_closed()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartServer();
        using NetworkStream stream = await ConnectRawAsync(server.Port);

        await stream.WriteAsync(new byte[] { 0, (byte)'X', (byte)'Y', (byte)'Z', 0, 1, 0, 1, 0, 0, 0, 0 });

        await AssertClosedByServerAsync(stream);
        await AssertStillServesAsync(server);
    }

    [Fact]
    public async Task A_client_that_only_offers_unsupported_versions_is_refused_in_the_hello()
    {
        FileShareServer server = StartServer();
        using NetworkStream stream = await ConnectRawAsync(server.Port);
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, minVersion: 7, maxVersion: 9, features: 0);

        await stream.WriteAsync(hello);
        await stream.ReadExactlyAsync(hello);

        Assert.Equal((ushort)StatusCode.UnsupportedVersion, Messages.ReadHello(hello).Second);
        await AssertClosedByServerAsync(stream);
    }

    [Fact]
    public async Task A_client_that_connects_and_says_nothing_is_dropped_after_the_handshake_timeout()
    {
        FileShareServer server = StartServer(handshakeTimeout: TimeSpan.FromMilliseconds(300));
        using NetworkStream silent = await ConnectRawAsync(server.Port);
        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 1, "the server accepted the silent client");

        await AssertClosedByServerAsync(silent);
        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "the server let go of the silent client");
    }

    [Fact]
    public async Task A_named_pipe_socket_or_device_in_the_share_is_left_out_of_listings_refused_at_once_and_blocks_neither_other_files_nor_the_stop()
    {
        string hash = TestFiles.WriteRandom(Share("file.bin"), 100_000);
        Directory.CreateDirectory(Share("sub"));
        // More pipes than the server has hash slots: were an open to wait on one, every first hash would wait too.
        string[] pipes = ["pipe", "sub/pipe2", "sub/pipe3"];
        foreach (string pipe in pipes)
        {
            using Process mkfifo = Process.Start("mkfifo", [Share(pipe)])!;
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // A socket file too: open(2) refuses it outright rather than waiting. And a device (this one reads like /dev/null).
        using var socketFile = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socketFile.Bind(new UnixDomainSocketEndPoint(Share("sub/socket")));
        using (Process mknod = Process.Start("mknod", [Share("sub/null"), "c", "1", "3"])!)
        {
            await mknod.WaitForExitAsync();
            Assert.Equal(0, mknod.ExitCode);
        }

        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        IReadOnlyList<RemoteEntry> listed = await Eventually.WithinAsync(
            connection.ListAsync("", ListOptions.Recursive | ListOptions.WithHashes, CancellationToken.None), TimeSpan.FromSeconds(10), "the listing");
        Assert.Equal(["file.bin"], listed.Select(e => e.Name));
        Assert.Equal(["file.bin"], (await connection.ListAsync("", recursive: true, CancellationToken.None)).Select(e => e.Name));
        foreach (string pipe in (string[])[.. pipes, "sub/socket", "sub/null"])
        {
            var refused = await Assert.ThrowsAsync<FileShareException>(() => Eventually.WithinAsync(
                NewDownloader().DownloadAsync(Host, server.Port, pipe, Download(Path.GetFileName(pipe)), false, null, CancellationToken.None), TimeSpan.FromSeconds(10), $"the refusal of {pipe}"));
            Assert.Equal(FileShareErrorKind.NotAFile, refused.Kind);
            Assert.Contains("not a regular file", refused.Message);
        }

        await NewDownloader().DownloadAsync(Host, server.Port, "file.bin", Download("file.bin"), false, null, CancellationToken.None);
        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
        await Eventually.WithinAsync(server.StopAsync(TimeSpan.FromSeconds(5)), TimeSpan.FromSeconds(10), "the stop");
    }

    [Fact]
    public async Task A_path_with_control_characters_is_logged_with_them_spelled_out_not_sent_to_the_console()
    {
        FileShareServer server = StartServer();
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;
        FileShareConnection connection = await ConnectAsync(server);

        var refused = await Assert.ThrowsAsync<FileShareException>(() => connection.StatAsync("a\u001b[2Jb\u0007\u009b\u202Ec", CancellationToken.None));
        Assert.Equal(FileShareErrorKind.PathRefused, refused.Kind);

        await Eventually.TrueAsync(() => !records.IsEmpty, "the request was logged");
        RequestLogRecord record = Assert.Single(records);
        Assert.Equal("a\\x1B[2Jb\\x07\\x9B\\u202Ec", record.Path);
        Assert.DoesNotContain(record.Outcome, char.IsControl);
    }

    [Fact]
    public async Task A_listing_leaves_out_names_no_request_could_name_lists_the_rest_and_tells_the_operator_once_per_name()
    {
        File.WriteAllText(Share("ok.txt"), "ok");
        Directory.CreateDirectory(Share("sub"));
        File.WriteAllText(Share("sub/fine.txt"), "fine");
        if (!OperatingSystem.IsWindows())
        {
            File.WriteAllText(Share("back\\slash.txt"), "x");
            File.WriteAllText(Share("tab\tname.txt"), "x");
            File.WriteAllText(Share("c1\u009B31mred.txt"), "x");
            File.WriteAllText(Share("invoice\u202Efdp.exe"), "x");
            Directory.CreateDirectory(Share("new\nline"));
            File.WriteAllText(Share("new\nline/inside.txt"), "x");
            // Bytes that are not UTF-8: .NET can neither write nor delete such a name itself.
            Shell("printf x > \"$1/bad$(printf '\\377')name.txt\"");
        }

        try
        {
            FileShareServer server = StartServer();
            var records = new ConcurrentQueue<RequestLogRecord>();
            server.RequestCompleted = records.Enqueue;
            FileShareConnection connection = await ConnectAsync(server);

            IReadOnlyList<RemoteEntry> listed = await connection.ListAsync("", recursive: true, CancellationToken.None);
            IReadOnlyList<RemoteEntry> again = await connection.ListAsync("", recursive: true, CancellationToken.None);

            Assert.Equal(["ok.txt", "sub/fine.txt"], listed.Select(e => e.Name));
            Assert.Equal(listed.Select(e => e.Name), again.Select(e => e.Name));
            await Eventually.TrueAsync(() => records.Count(r => r.Request == RequestKind.List) == 2, "both listings were logged");
            string[] notices = records.Where(r => r.Request == RequestKind.Notice).Select(r => r.Path).Order(StringComparer.Ordinal).ToArray();
            Assert.Equal(OperatingSystem.IsWindows() ? [] : ["back\\slash.txt", "bad\uFFFDname.txt", "c1\\x9B31mred.txt", "invoice\\u202Efdp.exe", "new\\x0Aline", "tab\\x09name.txt"], notices);
            Assert.All(records.Where(r => r.Request == RequestKind.Notice), r => Assert.StartsWith("NotListed: ", r.Outcome));
            Assert.Equal(2, server.Statistics.Requests);
        }
        finally
        {
            if (!OperatingSystem.IsWindows())
            {
                Shell("rm -f \"$1\"/bad*name.txt");
            }
        }

        void Shell(string script)
        {
            using Process shell = Process.Start("/bin/sh", ["-c", script, "sh", Share("")])!;
            shell.WaitForExit();
            Assert.Equal(0, shell.ExitCode);
        }
    }

    [Fact]
    public async Task A_recursive_listing_follows_a_symlinked_folder_once_and_never_round_a_loop()
    {
        File.WriteAllText(Share("a.txt"), "a");
        Directory.CreateDirectory(Share("d"));
        File.WriteAllText(Share("d/b.txt"), "b");
        Directory.CreateSymbolicLink(Share("self"), ".");
        Directory.CreateSymbolicLink(Share("d/up"), "..");
        Directory.CreateSymbolicLink(Share("alias"), "d");
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        IReadOnlyList<RemoteEntry> listed = await connection.ListAsync("", recursive: true, CancellationToken.None);

        // 'alias' is another way to the folder 'd', not a way back up, so it is listed like a folder of its own.
        Assert.Equal(["a.txt", "alias/b.txt", "d/b.txt"], listed.Select(e => e.Name));
        Assert.Equal(["alias/b.txt", "d/b.txt"], (await connection.ListAsync("", ListOptions.Recursive | ListOptions.WithHashes, CancellationToken.None)).Select(e => e.Name).Where(n => n.Contains('/')));
    }

    [Fact]
    public async Task Every_request_is_logged_and_counted()
    {
        File.WriteAllBytes(Share("ten.bin"), new byte[10]);
        FileShareServer server = StartServer();
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;
        FileShareConnection connection = await ConnectAsync(server);

        await connection.ListAsync("", recursive: false, CancellationToken.None);
        await Assert.ThrowsAsync<FileShareException>(() => connection.StatAsync("nope", CancellationToken.None));
        await NewDownloader().DownloadAsync(Host, server.Port, "ten.bin", Download("ten.bin"), false, null, CancellationToken.None);

        // A read is logged once its last byte is sent, which may be after the client has it.
        await Eventually.TrueAsync(() => records.Count == 4, "the server logged the read");
        Assert.Equal(
            [(RequestKind.List, "", "Ok"), (RequestKind.Stat, "nope", "NotFound"), (RequestKind.Hash, "ten.bin", "Ok"), (RequestKind.Read, "ten.bin", "Ok")],
            records.Select(r => (r.Request, r.Path, r.Outcome)));
        Assert.Equal(10, records.Last().Bytes);
        Assert.All(records, r => Assert.Equal(server.Port, r.Port));
        Assert.All(records, r => Assert.StartsWith("127.0.0.1:", r.RemoteEndPoint));
        Assert.Equal((4, 10), (server.Statistics.Requests, server.Statistics.BytesSent));
    }

    [Theory]
    [InlineData("empty.bin", 0)]
    [InlineData("one.bin", 1)]
    [InlineData("sub/naïve fïlé ✓.bin", TestFiles.MiB + 1)]
    [InlineData("big.bin", 8 * TestFiles.MiB)]
    public async Task The_original_client_downloads_intact_files_from_this_server(string name, int length)
    {
        string hash = TestFiles.WriteRandom(Share(name), length);
        FileShareServer server = StartServer();
        var records = new ConcurrentQueue<RequestLogRecord>();
        server.RequestCompleted = records.Enqueue;

        (int exitCode, string errors) = await PythonPeer.RunSeedClientAsync(Host, server.Port, name, Download("out.bin"));

        Assert.True(exitCode == 0, errors);
        Assert.Equal(hash, TestFiles.Sha256(Download("out.bin")));
        await Eventually.TrueAsync(() => !records.IsEmpty, "the server logged the request");
        Assert.Equal((RequestKind.SeedGet, name, (long)length), records.Select(r => (r.Request, r.Path, r.Bytes)).Single());
    }

    [Theory]
    [InlineData("missing.bin")]
    [InlineData("../outside.txt")]
    [InlineData("/etc/passwd")]
    [InlineData("sub")]
    public async Task The_original_client_hears_not_found_for_what_may_not_be_read(string name)
    {
        File.WriteAllText(Path.Join(Temp.Path, "outside.txt"), "outside");
        Directory.CreateDirectory(Share("sub"));
        FileShareServer server = StartServer();

        (int exitCode, string errors) = await PythonPeer.RunSeedClientAsync(Host, server.Port, name, Download("out.bin"));

        Assert.True(exitCode == SeedClientNotFound, $"exit code {exitCode}: {errors}");
        Assert.Contains("-1e", errors);
    }

    [Fact]
    public async Task The_original_client_hears_a_server_error_when_the_server_is_full()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartServer(maxConnections: 1);
        await ConnectAsync(server);

        (int exitCode, string errors) = await PythonPeer.RunSeedClientAsync(Host, server.Port, "a.txt", Download("out.bin"));

        Assert.True(exitCode == SeedClientServerError, $"exit code {exitCode}: {errors}");
    }

    /// <summary>A downloader that drains the socket a few hundred bytes at a time, so a large transfer stays in flight for seconds.</summary>
    private FileDownloader SlowDownloader() => NewDownloader(new FileShareClientOptions
    {
        ConnectTimeout = TimeSpan.FromSeconds(5),
        ReadTimeout = TimeSpan.FromSeconds(10),
        ReceiveBufferSize = 256,
    });

    private static FileShareClientOptions NoBusyRetry => new() { ConnectTimeout = TimeSpan.FromSeconds(5), ReadTimeout = TimeSpan.FromSeconds(10), BusyRetryTime = TimeSpan.Zero };

    /// <summary>Retries while the server still counts a connection that is closing; fails after 10 s.</summary>
    private static async Task<FileShareConnection> ConnectOnceNotBusyAsync(int port)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await FileShareConnection.ConnectAsync(Host, port, ClientOptions(), CancellationToken.None);
            }
            catch (FileShareException e) when (e.Kind == FileShareErrorKind.Busy && clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(10);
            }
        }
    }

    private void MakeSparseFile(string name, long length)
    {
        using var file = new FileStream(Share(name), FileMode.CreateNew);
        file.SetLength(length);
    }

    private static async Task<NetworkStream> ConnectRawAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port);
        return new NetworkStream(socket, ownsSocket: true);
    }

    private static async Task<NetworkStream> HandshakeRawAsync(int port, HandshakeFeatures features = HandshakeFeatures.None)
    {
        NetworkStream stream = await ConnectRawAsync(port);
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, (uint)features);
        await stream.WriteAsync(hello);
        await stream.ReadExactlyAsync(hello);
        Assert.Equal((ushort)StatusCode.Ok, Messages.ReadHello(hello).Second);
        return stream;
    }

    /// <summary>One path request with <paramref name="options"/> on a fresh connection that asked for <paramref name="features"/>, and its reply.</summary>
    private static async Task<Frame> AskRawAsync(int port, HandshakeFeatures features, FrameType request, string path, ListOptions options)
    {
        using NetworkStream stream = await HandshakeRawAsync(port, features);
        using var channel = new FrameChannel(stream);
        byte[] body = new byte[SpanWriter.StringSize(path) + 1];
        var writer = new SpanWriter(body);
        Messages.WritePathRequest(ref writer, path, options);
        await SendAsync(channel, request, 1, body);
        Frame reply = await ReadFrameWithinAsync(channel);
        // The body lies in the channel's pooled buffer, which goes back to the pool with the channel.
        return reply with { Body = reply.Body.ToArray() };
    }

    private static ValueTask SendAsync(FrameChannel channel, FrameType type, uint requestId, byte[] body)
    {
        SpanWriter writer = channel.BeginFrame(body.Length);
        writer.WriteBytes(body);
        return channel.SendFrameAsync(type, requestId, writer.Position, CancellationToken.None);
    }

    private static async Task<Frame> ReadFrameWithinAsync(FrameChannel channel)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return (await channel.ReadFrameAsync(timeout.Token))!.Value;
    }

    /// <summary>Reads until the server closes the connection (end of stream or reset); fails if it stays open.</summary>
    private static async Task AssertClosedByServerAsync(NetworkStream stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        byte[] sink = new byte[4096];
        try
        {
            while (await stream.ReadAsync(sink, timeout.Token) > 0)
            {
            }
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("The server did not close the connection within 10 s.");
        }
    }

    private async Task AssertStillServesAsync(FileShareServer server)
    {
        string target = Download(Guid.NewGuid().ToString("N"));
        await NewDownloader().DownloadAsync(Host, server.Port, "a.txt", target, false, null, CancellationToken.None);
        Assert.Equal(File.ReadAllText(Share("a.txt")), File.ReadAllText(target));
    }
}

using System.Security.Cryptography;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>
/// One download from several real servers: pieces spread over partial copies, a piece nobody has, a source that
/// damages bytes, and a source that changes under the download.
/// </summary>
public sealed class MultiSourceTests : ServerTestBase
{
    private const int Piece = ProtocolConstants.PieceSize;
    private const long NinePieces = (8L * Piece) + 12345;

    [Fact]
    public async Task A_file_spread_over_three_partial_copies_none_complete_is_assembled_from_all_of_them()
    {
        string original = Temp.Create("original");
        string hash = TestFiles.WriteRandom(Path.Join(original, "spread.bin"), NinePieces);
        FileShareServer[] servers =
        [
            StartServer(root: SeedPartialCopy(original, "spread.bin", "a", 0, 1, 2, 3)),
            StartServer(root: SeedPartialCopy(original, "spread.bin", "b", 3, 4, 5)),
            StartServer(root: SeedPartialCopy(original, "spread.bin", "c", 5, 6, 7, 8)),
        ];
        var problems = new List<FileShareException>();

        DownloadResult result = await NewDownloader().DownloadAsync(Request("spread.bin", servers, problems), CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("spread.bin")));
        Assert.Equal(hash, result.Sha256);
        Assert.Empty(problems);
        Assert.Equal([Download("spread.bin")], TestFiles.Leftovers(Downloads));
        Assert.All(result.Sources, s => Assert.True(s.Bytes >= Piece, $"{s.Endpoint} sent {s.Bytes} bytes"));
        Assert.Equal(NinePieces, result.Sources.Sum(s => s.Bytes));
        await Eventually.TrueAsync(() => servers.Sum(s => s.Statistics.BytesSent) == NinePieces, "the servers together sent each byte once");
    }

    [Fact]
    public async Task Whole_copies_that_differ_only_in_write_time_all_serve_pieces()
    {
        // As `cp` or `scp` without -p leave them: the same bytes, another time.
        (string first, string second, string hash) = TwoCopies("copy.bin", "first", "second");
        File.SetLastWriteTimeUtc(Path.Join(second, "copy.bin"), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        FileShareServer[] servers = [StartServer(root: first), StartServer(root: second)];
        var problems = new List<FileShareException>();

        DownloadResult result = await NewDownloader().DownloadAsync(Request("copy.bin", servers, problems), CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("copy.bin")));
        Assert.Empty(problems);
        Assert.All(result.Sources, s => Assert.True(s.Bytes >= Piece, $"{s.Endpoint} sent {s.Bytes} bytes"));
    }

    [Fact]
    public async Task Partial_copies_recorded_with_XXH3_pieces_by_sole_source_downloads_still_assemble_the_file_together()
    {
        string original = Temp.Create("original");
        string hash = TestFiles.WriteRandom(Path.Join(original, "spread.bin"), NinePieces);
        FileShareServer[] servers =
        [
            StartServer(root: SeedPartialCopy(original, "spread.bin", "a", PieceHashAlgorithm.XxHash128, null, 0, 1, 2, 3, 4)),
            StartServer(root: SeedPartialCopy(original, "spread.bin", "b", PieceHashAlgorithm.XxHash128, null, 4, 5, 6, 7, 8)),
        ];
        var problems = new List<FileShareException>();

        DownloadResult result = await NewDownloader().DownloadAsync(Request("spread.bin", servers, problems), CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("spread.bin")));
        Assert.Equal(hash, result.Sha256);
        Assert.Empty(problems);
        Assert.Equal(2, result.Sources.Count(s => s.Bytes > 0));
    }

    [Fact]
    public async Task With_only_XXH3_pieces_from_several_sources_pieces_forged_to_match_them_fail_the_whole_file_check_and_nothing_is_kept()
    {
        string original = Temp.Create("original");
        TestFiles.WriteRandom(Path.Join(original, "spread.bin"), NinePieces);
        // The first source's record (the one the others are checked against) describes its own forged piece 2.
        FileShareServer[] servers =
        [
            StartServer(root: SeedPartialCopy(original, "spread.bin", "forger", PieceHashAlgorithm.XxHash128, forgedPiece: 2, 0, 1, 2, 3, 4)),
            StartServer(root: SeedPartialCopy(original, "spread.bin", "honest", PieceHashAlgorithm.XxHash128, null, 5, 6, 7, 8)),
        ];

        var error = await Assert.ThrowsAsync<FileShareException>(() => NewDownloader().DownloadAsync(Request("spread.bin", servers, []), CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ContentMismatch, error.Kind);
        Assert.Contains("SHA-256", error.Message);
        Assert.Contains("'spread.bin'", error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task Beside_a_source_with_BLAKE3_pieces_a_forged_piece_that_matches_its_XXH3_record_is_caught_at_once_and_its_source_dropped()
    {
        string original = Temp.Create("original");
        TestFiles.WriteRandom(Path.Join(original, "spread.bin"), NinePieces);
        // Named first, so without a BLAKE3 digest from the second its record would be what every piece is checked against.
        FileShareServer[] servers =
        [
            StartServer(root: SeedPartialCopy(original, "spread.bin", "forger", PieceHashAlgorithm.XxHash128, forgedPiece: 2, 2)),
            StartServer(root: SeedPartialCopy(original, "spread.bin", "honest", PieceHashAlgorithm.Blake3, null, 0, 1, 3, 4, 5, 6, 7, 8)),
        ];
        var problems = new List<FileShareException>();

        var error = await Assert.ThrowsAsync<FileShareException>(() => NewDownloader().DownloadAsync(Request("spread.bin", servers, problems), CancellationToken.None));

        Assert.Equal(FileShareErrorKind.PiecesUnavailable, error.Kind);
        Assert.Contains($"bytes {2L * Piece}-{(3L * Piece) - 1} ", error.Message);
        FileShareException dropped = Assert.Single(problems);
        Assert.Equal((FileShareErrorKind.ContentMismatch, EndpointOf(servers[0].Port)), (dropped.Kind, dropped.Endpoint));
        Assert.Contains("BLAKE3", dropped.Message);
        Assert.False(File.Exists(Download("spread.bin")));
        Assert.False(PartialState.TryRead(Download(".spread.bin.partial.state"))!.Held.Has(2));
    }

    [Fact]
    public async Task A_partial_copy_is_listed_under_its_final_name_with_its_pieces_and_refuses_pieces_it_lacks()
    {
        string original = Temp.Create("original");
        TestFiles.WriteRandom(Path.Join(original, "spread.bin"), NinePieces);
        FileShareServer server = StartServer(root: SeedPartialCopy(original, "spread.bin", "a", 0, 2));
        FileShareConnection connection = await ConnectAsync(server);

        RemoteEntry listed = Assert.Single(await connection.ListAsync("", ListOptions.WithPieceMaps, CancellationToken.None));
        IReadOnlyList<RemoteEntry> plain = await connection.ListAsync("", recursive: false, CancellationToken.None);
        RemoteEntry stat = await connection.StatWithPiecesAsync("spread.bin", CancellationToken.None);
        var plainStat = await Assert.ThrowsAsync<FileShareException>(() => connection.StatAsync("spread.bin", CancellationToken.None));
        RangeReply held = await connection.RequestRangeAsync("spread.bin", 2L * Piece, Piece, CancellationToken.None);
        await connection.ReceiveRangeAsync("spread.bin", Track(File.OpenHandle(Download("piece2"), FileMode.Create, FileAccess.Write)), 0, null, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<FileShareException>(() => connection.RequestRangeAsync("spread.bin", Piece, 10, CancellationToken.None));

        Assert.Equal(("spread.bin", NinePieces, 2, 9), (listed.Name, listed.Length, listed.Pieces!.Held.HeldCount, listed.Pieces.Held.Count));
        Assert.True(listed.Pieces.Held.Has(0) && listed.Pieces.Held.Has(2));
        Assert.Empty(plain);
        Assert.Equal(("spread.bin", NinePieces, 2), (stat.Name, stat.Length, stat.Pieces!.Held.HeldCount));
        Assert.Equal(FileShareErrorKind.NotFound, plainStat.Kind);
        Assert.Equal(Piece, held.DataLength);
        Assert.Equal(FileShareErrorKind.PiecesUnavailable, refused.Kind);
        Assert.True(connection.IsReusable);
    }

    [Fact]
    public async Task With_a_piece_on_no_server_the_error_names_its_bytes_nothing_reaches_the_destination_and_the_rest_is_kept()
    {
        string original = Temp.Create("original");
        TestFiles.WriteRandom(Path.Join(original, "holey.bin"), NinePieces);
        FileShareServer[] servers =
        [
            StartServer(root: SeedPartialCopy(original, "holey.bin", "a", 0, 1, 2, 3)),
            StartServer(root: SeedPartialCopy(original, "holey.bin", "b", 5, 6, 7, 8)),
        ];

        var error = await Assert.ThrowsAsync<FileShareException>(() => NewDownloader().DownloadAsync(Request("holey.bin", servers, []), CancellationToken.None));

        Assert.Equal(FileShareErrorKind.PiecesUnavailable, error.Kind);
        Assert.Contains($"bytes {4L * Piece}-{(5L * Piece) - 1} ", error.Message);
        Assert.False(File.Exists(Download("holey.bin")));
        PartialState kept = PartialState.TryRead(Download(".holey.bin.partial.state"))!;
        Assert.Equal(8, kept.Held.HeldCount);
        Assert.False(kept.Held.Has(4));
    }

    [Fact]
    public async Task A_source_that_damages_a_byte_is_dropped_and_the_others_finish_the_file()
    {
        string hash = TestFiles.WriteRandom(Share("data.bin"), NinePieces);
        FileShareServer[] servers = [StartServer(), StartServer(), StartServer()];
        using var relay = new TamperingRelay(servers[1].Port, flipAt: 1000);
        var problems = new List<FileShareException>();
        var progress = new TransferProgress();
        DownloadResult result = await NewDownloader().DownloadAsync(new DownloadRequest
        {
            RemotePath = "data.bin",
            Destination = Download("data.bin"),
            Sources = [new(Host, servers[0].Port), new(Host, relay.Port), new(Host, servers[2].Port)],
            Progress = progress,
            SourceProblem = problems.Add,
        }, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("data.bin")));
        FileShareException dropped = Assert.Single(problems);
        Assert.Equal((FileShareErrorKind.ContentMismatch, EndpointOf(relay.Port)), (dropped.Kind, dropped.Endpoint));
        Assert.True(Assert.Single(progress.Sources, s => s.Endpoint == EndpointOf(relay.Port)).Dropped);
        Assert.Equal(NinePieces, progress.BytesReceived);
        Assert.Equal([Download("data.bin")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_source_whose_copy_was_changed_with_its_write_time_set_back_is_another_version_dropped_and_the_other_finishes_the_file()
    {
        (string good, string bad, string hash) = TwoCopies("data.bin", "good", "bad");
        FileShareServer[] servers = [StartServer(root: good), StartServer(root: bad)];
        FileShareConnection probe = await ConnectAsync(servers[1]);
        await probe.HashAsync("data.bin", CancellationToken.None);

        // One byte in every piece, the length and write time kept (as `cp -p` of another version would leave it): the
        // server sees another version by its change time, so the client is told of two contents, not of damage.
        string damaged = Path.Join(bad, "data.bin");
        DateTime written = File.GetLastWriteTimeUtc(damaged);
        using (var file = new FileStream(damaged, FileMode.Open, FileAccess.ReadWrite))
        {
            for (long piece = 0; piece < 9; piece++)
            {
                file.Position = (piece * Piece) + 4242;
                int old = file.ReadByte();
                file.Position--;
                file.WriteByte((byte)(old ^ 0x5A));
            }
        }

        File.SetLastWriteTimeUtc(damaged, written);
        var problems = new List<FileShareException>();

        await NewDownloader().DownloadAsync(Request("data.bin", servers, problems), CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("data.bin")));
        FileShareException dropped = Assert.Single(problems);
        Assert.Equal((FileShareErrorKind.DestinationConflict, EndpointOf(servers[1].Port)), (dropped.Kind, dropped.Endpoint));
    }

    [Fact]
    public async Task A_source_rewritten_during_a_download_from_two_servers_is_an_error_never_a_mixed_file()
    {
        string source = Share("moving.bin");
        TestFiles.WriteRandom(source, 16L * Piece);
        FileShareServer[] servers = [StartServer(), StartServer()];
        using var relay = new TamperingRelay(servers[1].Port, holdAt: 2L * Piece);
        using var slow = new TamperingRelay(servers[0].Port, holdAt: Piece);
        Task<DownloadResult> download = NewDownloader().DownloadAsync(new DownloadRequest
        {
            RemotePath = "moving.bin",
            Destination = Download("moving.bin"),
            Sources = [new(Host, slow.Port), new(Host, relay.Port)],
        }, CancellationToken.None);
        await Task.WhenAll(relay.Holding, slow.Holding).WaitAsync(TimeSpan.FromSeconds(20));

        TestFiles.WriteRandom(Share("moving.new"), 16L * Piece);
        File.Move(Share("moving.new"), source, overwrite: true);
        relay.Release();
        slow.Release();

        var error = await Assert.ThrowsAsync<FileShareException>(() => download.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(FileShareErrorKind.RemoteFileChanged, error.Kind);
        Assert.Contains("'moving.bin'", error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    private DownloadRequest Request(string name, FileShareServer[] servers, List<FileShareException> problems) => new()
    {
        RemotePath = name,
        Destination = Download(name),
        Sources = servers.Select(s => new DownloadSource(Host, s.Port)).ToList(),
        SourceProblem = problems.Add,
    };

    /// <summary>
    /// A share holding only some pieces of <paramref name="name"/>, as an interrupted download leaves it: the hidden
    /// partial file (zeros where pieces are missing) and its state record.
    /// </summary>
    /// <summary>Two new shared folders holding the same random file of nine pieces, and its SHA-256.</summary>
    private (string First, string Second, string Hash) TwoCopies(string name, string first, string second)
    {
        string firstFolder = Temp.Create(first);
        string hash = TestFiles.WriteRandom(Path.Join(firstFolder, name), NinePieces);
        string secondFolder = Temp.Create(second);
        File.Copy(Path.Join(firstFolder, name), Path.Join(secondFolder, name));
        return (firstFolder, secondFolder, hash);
    }

    private string SeedPartialCopy(string originalFolder, string name, string shareName, params int[] pieces) =>
        SeedPartialCopy(originalFolder, name, shareName, PieceHashAlgorithm.Sha256, forgedPiece: null, pieces);

    /// <summary>
    /// As above, with the record's pieces in <paramref name="algorithm"/>; a <paramref name="forgedPiece"/> holds other
    /// bytes than the original and the record describes those bytes, while its whole-file SHA-256 is still the original's.
    /// </summary>
    private string SeedPartialCopy(string originalFolder, string name, string shareName, PieceHashAlgorithm algorithm, int? forgedPiece, params int[] pieces)
    {
        string share = Temp.Create(shareName);
        byte[] original = File.ReadAllBytes(Path.Join(originalFolder, name));
        byte[] content = original.ToArray();
        if (forgedPiece is int forged)
        {
            Random.Shared.NextBytes(content.AsSpan(forged * Piece, Math.Min(Piece, content.Length - (forged * Piece))));
        }

        int count = FileDigest.PieceCountFor(content.Length, Piece);
        byte[] partial = new byte[content.Length];
        byte[] pieceHashes = new byte[count * ProtocolConstants.Sha256Length];
        var held = new PieceMap(count);
        for (int piece = 0; piece < count; piece++)
        {
            int start = piece * Piece;
            int length = Math.Min(Piece, content.Length - start);
            PieceHasher.HashPiece(algorithm, content.AsSpan(start, length), pieceHashes.AsSpan(piece * ProtocolConstants.Sha256Length));
            if (pieces.Contains(piece))
            {
                content.AsSpan(start, length).CopyTo(partial.AsSpan(start));
                held.Set(piece);
            }
        }

        string partialPath = PartialFile.PathFor(Path.Join(share, name));
        File.WriteAllBytes(partialPath, partial);
        var digest = new FileDigest(content.Length, File.GetLastWriteTimeUtc(Path.Join(originalFolder, name)), SHA256.HashData(original), Piece, pieceHashes, algorithm);
        new PartialState(name, ["elsewhere:5000"], digest, held).Write(PartialState.PathFor(partialPath));
        return share;
    }
}

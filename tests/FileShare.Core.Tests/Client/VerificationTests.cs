using System.Security.Cryptography;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Tests.Client;

/// <summary>Content hashes: what the server reports, and what the client does when bytes do not match them.</summary>
public sealed class VerificationTests : ServerTestBase
{
    private const int Piece = ProtocolConstants.PieceSize;

    [Fact]
    public async Task A_listing_with_hashes_gives_the_SHA256_of_every_source_file()
    {
        var expected = new Dictionary<string, string>
        {
            ["empty.bin"] = TestFiles.WriteRandom(Share("empty.bin"), 0),
            ["one.bin"] = TestFiles.WriteRandom(Share("one.bin"), 1),
            ["piece-1.bin"] = TestFiles.WriteRandom(Share("piece-1.bin"), Piece - 1),
            ["sub/piece+1.bin"] = TestFiles.WriteRandom(Share("sub/piece+1.bin"), Piece + 1),
        };
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        IReadOnlyList<RemoteEntry> entries = await connection.ListAsync("", ListOptions.Recursive | ListOptions.WithHashes, CancellationToken.None);

        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), entries.Select(e => KeyValuePair.Create(e.Name, Convert.ToHexString(e.Sha256!))).OrderBy(p => p.Key, StringComparer.Ordinal));
        IReadOnlyList<RemoteEntry> plain = await connection.ListAsync("", recursive: true, CancellationToken.None);
        Assert.All(plain, e => Assert.Null(e.Sha256));
    }

    [Fact]
    public async Task A_digest_hashes_every_piece_of_the_file()
    {
        TestFiles.WriteRandom(Share("two-and-a-bit.bin"), (2L * Piece) + 10);
        byte[] content = File.ReadAllBytes(Share("two-and-a-bit.bin"));
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        FileDigest digest = await connection.HashAsync("two-and-a-bit.bin", CancellationToken.None);

        Assert.Equal(SHA256.HashData(content), digest.Sha256);
        Assert.Equal(PieceHashAlgorithm.Blake3, digest.PieceAlgorithm);
        Assert.Equal(3, digest.PieceCount);
        for (int i = 0; i < 3; i++)
        {
            int start = i * Piece;
            Assert.Equal(Blake3.Hasher.Hash(content.AsSpan(start, Math.Min(Piece, content.Length - start))).AsSpan().ToArray(), digest.PieceHash(i).ToArray());
        }
    }

    [Theory]
    [InlineData(true, PieceHashAlgorithm.XxHash128)]
    [InlineData(false, PieceHashAlgorithm.Blake3)]
    public async Task A_sole_source_gets_XXH3_pieces_and_one_of_several_gets_BLAKE3_both_with_the_file_SHA256(bool soleSource, PieceHashAlgorithm expected)
    {
        TestFiles.WriteRandom(Share("two-and-a-bit.bin"), (2L * Piece) + 10);
        byte[] content = File.ReadAllBytes(Share("two-and-a-bit.bin"));
        FileShareServer server = StartServer();
        FileShareConnection connection = await ConnectAsync(server);

        (FileDigest digest, PieceMap? held) = await connection.HashWithPiecesAsync("two-and-a-bit.bin", soleSource, CancellationToken.None);

        Assert.Null(held);
        Assert.Equal(SHA256.HashData(content), digest.Sha256);
        Assert.Equal(expected, digest.PieceAlgorithm);
        Assert.Equal(3, digest.PieceCount);
        for (int i = 0; i < 3; i++)
        {
            ReadOnlySpan<byte> piece = content.AsSpan(i * Piece, Math.Min(Piece, content.Length - (i * Piece)));
            byte[] independent = soleSource ? [.. System.IO.Hashing.XxHash128.Hash(piece), .. new byte[16]] : Blake3.Hasher.Hash(piece).AsSpan().ToArray();
            Assert.Equal(Convert.ToHexString(independent), Convert.ToHexString(digest.PieceHash(i)));
        }
    }

    [Fact]
    public async Task A_byte_flipped_on_the_wire_fails_the_download_and_leaves_nothing()
    {
        TestFiles.WriteRandom(Share("data.bin"), 3L * Piece);
        FileShareServer server = StartServer();
        using var relay = new TamperingRelay(server.Port, flipAt: (2L * Piece) + 12345);

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, relay.Port, "data.bin", Download("data.bin"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ContentMismatch, error.Kind);
        Assert.Contains("'data.bin'", error.Message);
        Assert.Contains(EndpointOf(relay.Port), error.Message);
        Assert.Contains("piece", error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_byte_flipped_on_the_wire_fails_a_download_whose_digest_and_bytes_were_asked_for_together()
    {
        TestFiles.WriteRandom(Share("first.bin"), 100);
        TestFiles.WriteRandom(Share("data.bin"), 3L * Piece);
        FileShareServer server = StartServer();
        using var relay = new TamperingRelay(server.Port, flipAt: (2L * Piece) + 12345);
        FileDownloader downloader = NewDownloader();

        // The first download tells the pool this server answers piece maps; the second asks for digest and bytes at once.
        await downloader.DownloadAsync(Host, relay.Port, "first.bin", Download("first.bin"), false, null, CancellationToken.None);
        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            downloader.DownloadAsync(Host, relay.Port, "data.bin", Download("data.bin"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ContentMismatch, error.Kind);
        Assert.Contains("piece 2", error.Message);
        Assert.False(File.Exists(Download("data.bin")));
        Assert.True(File.Exists(Download("first.bin")));
    }

    [Fact]
    public async Task A_byte_changed_after_hashing_with_the_write_time_set_back_is_served_with_a_fresh_digest()
    {
        string source = Share("disk.bin");
        TestFiles.WriteRandom(source, Piece + 100);
        FileShareServer server = StartServer();
        await NewDownloader().DownloadAsync(Host, server.Port, "disk.bin", Download("first.bin"), false, null, CancellationToken.None);

        // One byte changed, the length and write time kept (as `cp -p`, `rsync -t` or `touch -r` leave a file).
        DateTime written = File.GetLastWriteTimeUtc(source);
        using (var file = new FileStream(source, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = 42;
            int old = file.ReadByte();
            file.Position = 42;
            file.WriteByte((byte)(old ^ 0xFF));
        }

        File.SetLastWriteTimeUtc(source, written);

        await NewDownloader().DownloadAsync(Host, server.Port, "disk.bin", Download("second.bin"), false, null, CancellationToken.None);

        Assert.Equal(TestFiles.Sha256(source), TestFiles.Sha256(Download("second.bin")));
        Assert.NotEqual(TestFiles.Sha256(Download("first.bin")), TestFiles.Sha256(Download("second.bin")));
    }

    [Fact]
    public async Task A_file_rewritten_during_the_transfer_is_reported_as_changed_never_delivered_mixed()
    {
        var error = await ChangedMidTransferAsync("moving.bin", source =>
        {
            // Same length, new bytes, in place: the server keeps sending from the same open file.
            using (var file = new FileStream(source, FileMode.Open, FileAccess.Write))
            {
                byte[] fresh = new byte[TestFiles.MiB];
                for (int i = 0; i < 16 * 4; i++)
                {
                    Random.Shared.NextBytes(fresh);
                    file.Write(fresh);
                }
            }

            File.SetLastWriteTimeUtc(source, DateTime.UtcNow.AddMinutes(1));
        });

        Assert.Equal(FileShareErrorKind.RemoteFileChanged, error.Kind);
        Assert.Contains("'moving.bin'", error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_file_rewritten_over_and_over_while_the_server_hashes_it_is_reported_as_changed_not_as_a_server_error()
    {
        string source = Share("flapping.bin");
        byte[] content = new byte[8 * TestFiles.MiB];
        Random.Shared.NextBytes(content);
        File.WriteAllBytes(source, content);
        FileShareServer server = StartServer();
        using var stop = new CancellationTokenSource();
        // Truncated and written again, as `head -c 8M src > file` in a loop does.
        Task rewriting = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                File.WriteAllBytes(source, content);
            }
        });

        var errors = new List<FileShareException>();
        try
        {
            // Most attempts fall between two rewrites and succeed (the bytes are the same each time); a faster client
            // slips through more often, so it tries until it has caught a few rewrites, within a bound.
            for (int attempt = 0; attempt < 300 && errors.Count < 3; attempt++)
            {
                try
                {
                    await NewDownloader().DownloadAsync(Host, server.Port, "flapping.bin", Download("flapping.bin"), true, null, CancellationToken.None);
                }
                catch (FileShareException e)
                {
                    errors.Add(e);
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await rewriting;
        }

        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal(FileShareErrorKind.RemoteFileChanged, e.Kind));
    }

    [Fact]
    public async Task A_file_cut_short_during_the_transfer_is_reported_as_changed_not_as_a_network_fault()
    {
        // The server runs out of file before it has sent what it promised, and ends the connection.
        var error = await ChangedMidTransferAsync("shrinking.bin", source =>
        {
            using var file = new FileStream(source, FileMode.Open, FileAccess.Write);
            file.SetLength(Piece);
        });

        Assert.Equal(FileShareErrorKind.RemoteFileChanged, error.Kind);
        Assert.Contains("'shrinking.bin'", error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task An_identical_destination_is_skipped_without_reading_the_file_again()
    {
        string hash = TestFiles.WriteRandom(Share("same.bin"), Piece + 7);
        FileShareServer server = StartServer();
        var downloader = new FileDownloader(Track(new ConnectionPool(ClientOptions()))) { SkipIdentical = true };
        DownloadResult first = await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);
        await Eventually.TrueAsync(() => server.Statistics.BytesSent == Piece + 7, "the first download was served");

        DownloadResult second = await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);

        Assert.False(first.Skipped);
        Assert.Equal(hash, first.Sha256);
        Assert.True(second.Skipped);
        Assert.Equal(Piece + 7, server.Statistics.BytesSent);

        File.WriteAllText(Download("same.bin"), "different");
        DownloadResult third = await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);
        Assert.False(third.Skipped);
        Assert.Equal(hash, TestFiles.Sha256(Download("same.bin")));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)] // -NoClobber: an existing file is left alone altogether
    public async Task An_identical_destination_skipped_takes_the_sources_new_write_time_unless_no_clobber(bool overwrite)
    {
        TestFiles.WriteRandom(Share("same.bin"), 1000);
        FileShareServer server = StartServer();
        var downloader = new FileDownloader(Track(new ConnectionPool(ClientOptions()))) { SkipIdentical = true };
        await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);
        DateTime before = File.GetLastWriteTimeUtc(Download("same.bin"));
        var touched = new DateTime(2024, 6, 1, 12, 0, 0, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(Share("same.bin"), touched);

        DownloadResult again = await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), overwrite, null, CancellationToken.None);

        Assert.True(again.Skipped);
        Assert.Equal(overwrite ? touched : before, File.GetLastWriteTimeUtc(Download("same.bin")));
    }

    [Fact]
    public async Task An_identical_destination_that_is_a_link_gives_the_file_it_leads_to_the_sources_time()
    {
        TestFiles.WriteRandom(Share("same.bin"), 1000);
        FileShareServer server = StartServer();
        var downloader = new FileDownloader(Track(new ConnectionPool(ClientOptions()))) { SkipIdentical = true };
        string real = Download("real.bin");
        await downloader.DownloadAsync(Host, server.Port, "same.bin", real, true, null, CancellationToken.None);
        File.CreateSymbolicLink(Download("same.bin"), real);
        var touched = new DateTime(2024, 6, 1, 12, 0, 0, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(Share("same.bin"), touched);

        DownloadResult again = await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);

        Assert.True(again.Skipped);
        Assert.Equal(touched, File.GetLastWriteTimeUtc(real));
    }

    [Theory]
    [InlineData(Piece + 7, Piece + 3)]
    [InlineData(1024, 512)]
    public async Task A_destination_of_the_same_length_that_differs_in_one_byte_is_downloaded_again(int length, int changedAt)
    {
        string hash = TestFiles.WriteRandom(Share("same.bin"), length);
        FileShareServer server = StartServer();
        var downloader = new FileDownloader(Track(new ConnectionPool(ClientOptions()))) { SkipIdentical = true };
        await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);
        await Eventually.TrueAsync(() => server.Statistics.BytesSent == length, "the first download was served");
        using (SafeFileHandle copy = File.OpenHandle(Download("same.bin"), FileMode.Open, FileAccess.ReadWrite))
        {
            byte[] one = new byte[1];
            RandomAccess.Read(copy, one, changedAt);
            one[0] ^= 0xFF;
            RandomAccess.Write(copy, one, changedAt);
        }

        DownloadResult again = await downloader.DownloadAsync(Host, server.Port, "same.bin", Download("same.bin"), true, null, CancellationToken.None);

        Assert.False(again.Skipped);
        Assert.Equal(hash, TestFiles.Sha256(Download("same.bin")));
        await Eventually.TrueAsync(() => server.Statistics.BytesSent == 2L * length, "the file was served again");
    }

    /// <summary>
    /// Downloads a file of 16 pieces through a relay that holds the transfer after two, applies <paramref name="change"/>
    /// to the server's file meanwhile, and returns the error the download ends with.
    /// </summary>
    private async Task<FileShareException> ChangedMidTransferAsync(string name, Action<string> change)
    {
        string source = Share(name);
        TestFiles.WriteRandom(source, 16L * Piece);
        FileShareServer server = StartServer();
        using var relay = new TamperingRelay(server.Port, holdAt: 2L * Piece);
        Task<DownloadResult> download = NewDownloader().DownloadAsync(Host, relay.Port, name, Download(name), false, null, CancellationToken.None);
        await relay.Holding.WaitAsync(TimeSpan.FromSeconds(20));

        change(source);
        relay.Release();

        return await Assert.ThrowsAsync<FileShareException>(() => download.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}

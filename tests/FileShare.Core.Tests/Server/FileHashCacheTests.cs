using System.Security.Cryptography;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>
/// The digests a first hash computes (read ahead, the whole-file and piece digests on two threads) equal SHA-256 of
/// the file and SHA-256, BLAKE3 or XXH3-128 of each piece computed independently in one call each, at every length
/// where a piece or buffer boundary could be mishandled.
/// </summary>
public sealed class FileHashCacheTests : IDisposable
{
    private const int Piece = ProtocolConstants.PieceSize;
    // Neither divides the other, so reads straddle piece boundaries.
    private const int SmallPiece = 40_000;
    private const int SmallBuffer = 16_384;

    private readonly TempDirectory _share = new();

    public static TheoryData<long, PieceHashAlgorithm> ProtocolPieceLengths => Combine(0L, 1L, Piece - 1L, Piece, Piece + 1L, (3L * Piece) + 12_345);

    public static TheoryData<long, PieceHashAlgorithm> StraddlingLengths =>
        Combine(0L, 1L, SmallBuffer - 1L, SmallBuffer, SmallPiece - 1L, SmallPiece, SmallPiece + 1L, 7L * SmallPiece, (11L * SmallPiece) + 4_321);

    [Theory]
    [MemberData(nameof(ProtocolPieceLengths))]
    public async Task Digests_at_the_protocol_piece_size_equal_independent_hashes(long length, PieceHashAlgorithm algorithm)
    {
        string path = Path.Join(_share.Path, "file.bin");
        TestFiles.WriteRandom(path, length);

        FileDigest digest = await new FileHashCache(_share.Path).GetAsync(path, algorithm, CancellationToken.None);

        AssertDigestMatches(path, Piece, algorithm, digest);
    }

    [Theory]
    [MemberData(nameof(StraddlingLengths))]
    public async Task Digests_with_reads_that_straddle_pieces_equal_independent_hashes(long length, PieceHashAlgorithm algorithm)
    {
        string path = Path.Join(_share.Path, "file.bin");
        TestFiles.WriteRandom(path, length);

        FileDigest digest = await new FileHashCache(_share.Path, SmallPiece, SmallBuffer).GetAsync(path, algorithm, CancellationToken.None);

        AssertDigestMatches(path, SmallPiece, algorithm, digest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_file_changed_with_its_length_and_write_time_set_back_is_hashed_again(bool replacedByRename)
    {
        string path = Path.Join(_share.Path, "file.bin");
        string before = TestFiles.WriteRandom(path, 3L * SmallPiece);
        DateTime written = File.GetLastWriteTimeUtc(path);
        var cache = new FileHashCache(_share.Path, SmallPiece, SmallBuffer);
        Assert.Equal(before, Convert.ToHexString((await cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None)).Sha256));

        // As `cp -p`, `rsync -t` or `touch -r` leave a file: other bytes, the same length and write time.
        string changed = replacedByRename ? Path.Join(_share.Path, "new.bin") : path;
        byte[] bytes = File.ReadAllBytes(path);
        bytes[SmallPiece + 7] ^= 0xFF;
        if (replacedByRename)
        {
            File.WriteAllBytes(changed, bytes);
            File.SetLastWriteTimeUtc(changed, written);
            File.Move(changed, path, overwrite: true);
        }
        else
        {
            using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
            {
                file.Write(bytes);
            }

            File.SetLastWriteTimeUtc(path, written);
        }

        Assert.Equal(written, File.GetLastWriteTimeUtc(path));
        FileDigest again = await cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);

        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)), Convert.ToHexString(again.Sha256));
        AssertDigestMatches(path, SmallPiece, PieceHashAlgorithm.Blake3, again);
    }

    [Fact]
    public async Task Callers_that_ask_for_a_new_file_at_the_same_moment_share_one_first_hash()
    {
        string path = Path.Join(_share.Path, "file.bin");
        string sha256 = TestFiles.WriteRandom(path, 8L * SmallPiece);
        var cache = new FileHashCache(_share.Path, SmallPiece, SmallBuffer);
        using var start = new Barrier(16);

        // Sixteen threads of their own: blocked on the barrier, sixteen pool threads would starve every other test in
        // the process while the pool grew (12.7 s once, and a download beside it timed out).
        FileDigest[] digests = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            return cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap()));

        Assert.Equal(1, cache.Computations);
        Assert.All(digests, d => Assert.Equal(sha256, Convert.ToHexString(d.Sha256)));
    }

    [Fact]
    public async Task A_first_hash_ends_with_the_cache_s_lifetime_and_lets_go_of_the_file()
    {
        // Holes read as zeros at memory speed, and hashing 64 GiB of them still takes far longer than the test waits.
        string path = Path.Join(_share.Path, "huge.bin");
        using (var file = new FileStream(path, FileMode.CreateNew))
        {
            file.SetLength(64L << 30);
        }

        using var lifetime = new CancellationTokenSource();
        var cache = new FileHashCache(_share.Path, lifetime: lifetime.Token);
        Task<FileDigest> hashing = cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);
        await Eventually.TrueAsync(() => TestFiles.IsOpenHere(path), "the first hash opened the file");

        lifetime.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hashing.WaitAsync(TimeSpan.FromSeconds(10)));
        await Eventually.TrueAsync(() => !TestFiles.IsOpenHere(path), "the file was closed");
    }

    [Fact]
    public async Task One_file_keeps_a_digest_per_piece_algorithm_each_with_the_same_whole_file_SHA256_and_one_pass_makes_BLAKE3_and_XXH3()
    {
        string path = Path.Join(_share.Path, "file.bin");
        string sha256 = TestFiles.WriteRandom(path, 5L * SmallPiece);
        var cache = new FileHashCache(_share.Path, SmallPiece, SmallBuffer);

        FileDigest blake3 = await cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);
        Task<FileDigest> fast = cache.GetAsync(path, PieceHashAlgorithm.XxHash128, CancellationToken.None);
        Assert.True(fast.IsCompletedSuccessfully, "the XXH3 digest was not ready: the file is being hashed again");
        AssertDigestMatches(path, SmallPiece, PieceHashAlgorithm.XxHash128, await fast);
        FileDigest sha = await cache.GetAsync(path, PieceHashAlgorithm.Sha256, CancellationToken.None);

        Assert.Equal(PieceHashAlgorithm.Blake3, blake3.PieceAlgorithm);
        Assert.Equal(PieceHashAlgorithm.Sha256, sha.PieceAlgorithm);
        Assert.Equal(sha256, blake3.Sha256Hex);
        Assert.Equal(sha256, sha.Sha256Hex);
        Assert.Equal(sha256, (await fast).Sha256Hex);
        Assert.NotEqual(Convert.ToHexString(blake3.PieceHashes), Convert.ToHexString(sha.PieceHashes));
        Assert.Same(blake3, await cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None));
    }

    [Fact]
    public async Task A_file_rewritten_with_other_bytes_gets_a_fresh_digest()
    {
        string path = Path.Join(_share.Path, "file.bin");
        TestFiles.WriteRandom(path, 3L * SmallPiece);
        var cache = new FileHashCache(_share.Path, SmallPiece, SmallBuffer);
        FileDigest first = await cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);

        File.Delete(path);
        string rewritten = TestFiles.WriteRandom(path, 3L * SmallPiece);
        File.SetLastWriteTimeUtc(path, first.LastWriteTimeUtc.AddSeconds(1));
        FileDigest second = await cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);

        Assert.Equal(rewritten, second.Sha256Hex);
        AssertDigestMatches(path, SmallPiece, PieceHashAlgorithm.Blake3, second);
    }

    [Fact]
    public async Task Piece_hashes_past_the_cache_s_byte_budget_start_it_afresh()
    {
        // 25 pieces of each file take 25 x (32 + 32) = 1,600 bytes of BLAKE3 and XXH3-128 hashes (each in a 32-byte slot).
        string[] paths = Enumerable.Range(0, 3).Select(i => Path.Join(_share.Path, $"file{i}.bin")).ToArray();
        foreach (string path in paths)
        {
            TestFiles.WriteRandom(path, 25L * SmallPiece);
        }

        var cache = new FileHashCache(_share.Path, SmallPiece, SmallBuffer, maxPieceHashBytes: 2_000);
        await cache.GetAsync(paths[0], PieceHashAlgorithm.Blake3, CancellationToken.None);
        await cache.GetAsync(paths[1], PieceHashAlgorithm.Blake3, CancellationToken.None);
        await cache.GetAsync(paths[0], PieceHashAlgorithm.Blake3, CancellationToken.None);
        Assert.Equal(2, cache.Computations);

        // 3,200 bytes kept: the next miss clears the cache, so the first file is hashed again.
        await cache.GetAsync(paths[2], PieceHashAlgorithm.Blake3, CancellationToken.None);
        FileDigest again = await cache.GetAsync(paths[0], PieceHashAlgorithm.Blake3, CancellationToken.None);

        Assert.Equal(4, cache.Computations);
        AssertDigestMatches(paths[0], SmallPiece, PieceHashAlgorithm.Blake3, again);
    }

    [Fact]
    public async Task A_file_of_one_piece_is_hashed_at_once_while_large_first_hashes_take_every_slot()
    {
        using var lifetime = new CancellationTokenSource();
        var cache = new FileHashCache(_share.Path, lifetime: lifetime.Token);
        Task<FileDigest>[] large = Enumerable.Range(0, FileHashCache.ConcurrentFiles).Select(i =>
        {
            // Sparse, so it costs no disk, but its hash reads and hashes every byte: tens of seconds.
            string path = Path.Join(_share.Path, $"large{i}.bin");
            using (FileStream file = File.Create(path))
            {
                file.SetLength(64L << 30);
            }

            return cache.GetAsync(path, PieceHashAlgorithm.Blake3, CancellationToken.None);
        }).ToArray();
        string tiny = Path.Join(_share.Path, "tiny.txt");
        File.WriteAllText(tiny, "tiny");

        try
        {
            FileDigest digest = await Eventually.WithinAsync(cache.GetAsync(tiny, PieceHashAlgorithm.Blake3, CancellationToken.None), TimeSpan.FromSeconds(10), "the one-piece file's hash");

            Assert.Equal(Convert.ToHexString(SHA256.HashData("tiny"u8)), digest.Sha256Hex);
            Assert.DoesNotContain(large, hash => hash.IsCompleted);
        }
        finally
        {
            await lifetime.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.WhenAll(large));
        }
    }

    public void Dispose() => _share.Dispose();

    private static TheoryData<long, PieceHashAlgorithm> Combine(params long[] lengths)
    {
        var data = new TheoryData<long, PieceHashAlgorithm>();
        foreach (long length in lengths)
        {
            data.Add(length, PieceHashAlgorithm.Sha256);
            data.Add(length, PieceHashAlgorithm.Blake3);
            data.Add(length, PieceHashAlgorithm.XxHash128);
        }

        return data;
    }

    private static void AssertDigestMatches(string path, int pieceSize, PieceHashAlgorithm asked, FileDigest digest)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(bytes.Length, digest.Length);
        Assert.Equal(TestFiles.Sha256(path), digest.Sha256Hex);
        Assert.Equal(pieceSize, digest.PieceSize);
        int pieces = (bytes.Length + pieceSize - 1) / pieceSize;
        Assert.Equal(pieces, digest.PieceCount);

        // A file of one piece is described by its SHA-256 alone, whatever was asked.
        Assert.Equal(pieces > 1 ? asked : PieceHashAlgorithm.Sha256, digest.PieceAlgorithm);
        for (int index = 0; index < pieces; index++)
        {
            int start = index * pieceSize;
            ReadOnlySpan<byte> piece = bytes.AsSpan(start, Math.Min(pieceSize, bytes.Length - start));
            byte[] expected = digest.PieceAlgorithm switch
            {
                PieceHashAlgorithm.Blake3 => Blake3.Hasher.Hash(piece).AsSpan().ToArray(),
                PieceHashAlgorithm.XxHash128 => [.. System.IO.Hashing.XxHash128.Hash(piece), .. new byte[16]],
                _ => SHA256.HashData(piece),
            };
            Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(digest.PieceHash(index)));
        }
    }
}

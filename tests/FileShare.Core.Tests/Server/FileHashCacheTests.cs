using System.Security.Cryptography;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>
/// The digests a first hash computes (read ahead, two digests on two threads) equal SHA-256 computed independently
/// over the file and over each piece, at every length where a piece or buffer boundary could be mishandled.
/// </summary>
public sealed class FileHashCacheTests : IDisposable
{
    private const int Piece = ProtocolConstants.PieceSize;
    // Neither divides the other, so reads straddle piece boundaries.
    private const int SmallPiece = 40_000;
    private const int SmallBuffer = 16_384;

    private readonly TempDirectory _share = new();

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(Piece - 1L)]
    [InlineData((long)Piece)]
    [InlineData(Piece + 1L)]
    [InlineData(3L * Piece + 12_345)]
    public async Task Digests_at_the_protocol_piece_size_equal_an_independent_SHA256(long length)
    {
        string path = Path.Join(_share.Path, "file.bin");
        TestFiles.WriteRandom(path, length);

        FileDigest digest = await new FileHashCache(_share.Path).GetAsync(path, CancellationToken.None);

        AssertDigestMatches(path, Piece, digest);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(SmallBuffer - 1L)]
    [InlineData((long)SmallBuffer)]
    [InlineData(SmallPiece - 1L)]
    [InlineData((long)SmallPiece)]
    [InlineData(SmallPiece + 1L)]
    [InlineData(7L * SmallPiece)]
    [InlineData(11L * SmallPiece + 4_321)]
    public async Task Digests_with_reads_that_straddle_pieces_equal_an_independent_SHA256(long length)
    {
        string path = Path.Join(_share.Path, "file.bin");
        TestFiles.WriteRandom(path, length);

        FileDigest digest = await new FileHashCache(_share.Path, SmallPiece, SmallBuffer).GetAsync(path, CancellationToken.None);

        AssertDigestMatches(path, SmallPiece, digest);
    }

    [Fact]
    public async Task A_file_rewritten_with_other_bytes_gets_a_fresh_digest()
    {
        string path = Path.Join(_share.Path, "file.bin");
        TestFiles.WriteRandom(path, 3L * SmallPiece);
        var cache = new FileHashCache(_share.Path, SmallPiece, SmallBuffer);
        FileDigest first = await cache.GetAsync(path, CancellationToken.None);

        File.Delete(path);
        string rewritten = TestFiles.WriteRandom(path, 3L * SmallPiece);
        File.SetLastWriteTimeUtc(path, first.LastWriteTimeUtc.AddSeconds(1));
        FileDigest second = await cache.GetAsync(path, CancellationToken.None);

        Assert.Equal(rewritten, second.Sha256Hex);
        AssertDigestMatches(path, SmallPiece, second);
    }

    public void Dispose() => _share.Dispose();

    private static void AssertDigestMatches(string path, int pieceSize, FileDigest digest)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(bytes.Length, digest.Length);
        Assert.Equal(TestFiles.Sha256(path), digest.Sha256Hex);
        Assert.Equal(pieceSize, digest.PieceSize);
        int pieces = (bytes.Length + pieceSize - 1) / pieceSize;
        Assert.Equal(pieces, digest.PieceCount);
        for (int index = 0; index < pieces; index++)
        {
            int start = index * pieceSize;
            byte[] expected = SHA256.HashData(bytes.AsSpan(start, Math.Min(pieceSize, bytes.Length - start)));
            Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(digest.PieceHash(index)));
        }
    }
}

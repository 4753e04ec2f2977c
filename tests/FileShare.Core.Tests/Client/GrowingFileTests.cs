using System.Security.Cryptography;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>
/// A shared file still being written (a log): a download takes the bytes it had when the server hashed it, as a
/// snapshot, checked piece by piece, where it used to fail every time as "changed" (found by exploratory testing).
/// </summary>
public sealed class GrowingFileTests : ServerTestBase
{
    [Theory]
    [InlineData(3 * 1024 * 1024)] // one piece
    [InlineData((2 * ProtocolConstants.PieceSize) + 12_345)] // several pieces
    public async Task A_file_appended_to_throughout_the_download_arrives_as_the_prefix_it_had_when_hashed(int initialLength)
    {
        string source = Share("app.log");
        TestFiles.WriteRandom(source, initialLength);
        FileShareServer server = StartServer();
        using var stop = new CancellationTokenSource();
        Task appending = AppendUntilAsync(source, stop.Token);
        await Eventually.TrueAsync(() => new FileInfo(source).Length > initialLength, "the file grows");

        DownloadResult result;
        try
        {
            result = await Eventually.WithinAsync(
                NewDownloader().DownloadAsync(Host, server.Port, "app.log", Download("app.log"), false, null, CancellationToken.None), TimeSpan.FromSeconds(30), "the download");
        }
        finally
        {
            await stop.CancelAsync();
            await appending;
        }

        long length = new FileInfo(Download("app.log")).Length;
        // Longer than at first (it grew before the download began), as long as it was then at most.
        Assert.InRange(length, initialLength + 1, new FileInfo(source).Length);
        Assert.Equal(result.Sha256, TestFiles.Sha256(Download("app.log")));
        Assert.Equal(Sha256OfPrefix(source, length), result.Sha256);
        Assert.Equal([Download("app.log")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task Hashing_a_file_appended_to_meanwhile_describes_the_bytes_it_had_when_the_hash_began()
    {
        string source = Share("app.log");
        TestFiles.WriteRandom(source, 16 << 20);
        using var stop = new CancellationTokenSource();
        Task appending = AppendUntilAsync(source, stop.Token);
        var cache = new FileHashCache(ShareRoot, readBuffer: 16_384);

        FileDigest digest;
        try
        {
            digest = await cache.GetAsync(source, PieceHashAlgorithm.Blake3, CancellationToken.None);
        }
        finally
        {
            await stop.CancelAsync();
            await appending;
        }

        Assert.InRange(digest.Length, 16 << 20, new FileInfo(source).Length);
        Assert.Equal(Sha256OfPrefix(source, digest.Length), digest.Sha256Hex);
    }

    /// <summary>Appends a few bytes every millisecond or so, as a busy log does, until cancelled.</summary>
    private static async Task AppendUntilAsync(string path, CancellationToken cancellationToken)
    {
        await Task.Yield();
        byte[] line = new byte[512];
        using var log = new FileStream(path, FileMode.Append, FileAccess.Write, System.IO.FileShare.ReadWrite, bufferSize: 0);
        while (!cancellationToken.IsCancellationRequested)
        {
            Random.Shared.NextBytes(line);
            log.Write(line);
            try
            {
                await Task.Delay(1, cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private static string Sha256OfPrefix(string path, long length)
    {
        using var file = File.OpenRead(path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[1 << 20];
        for (long left = length; left > 0;)
        {
            int read = file.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            hash.AppendData(buffer, 0, read);
            left -= read;
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }
}

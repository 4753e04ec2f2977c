using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>
/// Two downloads into one destination file from separate clients (as two sessions make them): the one that holds the
/// partial file finishes with its own bytes, the other is refused with DestinationInUse and touches nothing.
/// </summary>
public sealed class SharedDestinationTests : ServerTestBase
{
    [Fact]
    public async Task A_second_download_into_a_destination_being_written_is_refused_and_changes_nothing()
    {
        string hash = TestFiles.WriteRandom(Share("x.bin"), 10_000);
        FileShareServer server = StartServer();
        // The first download receives 4,000 of 10,000 bytes and then waits, holding its partial file.
        using var stalling = ScriptedServer.SendingPartOfAFile(10_000, 4_000, (_, _, ct) => Task.Delay(Timeout.Infinite, ct));
        var progress = new TransferProgress();
        using var cancel = new CancellationTokenSource();
        Task first = NewDownloader().DownloadAsync(Host, stalling.Port, "x.bin", Download("x.bin"), false, progress, cancel.Token);
        await Eventually.TrueAsync(() => progress.BytesReceived == 4_000, "the first download received its bytes");
        long partialLength = new FileInfo(Download(".x.bin.partial")).Length;

        var refused = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, server.Port, "x.bin", Download("x.bin"), true, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.DestinationInUse, refused.Kind);
        Assert.Contains(Download("x.bin"), refused.Message);
        Assert.False(first.IsCompleted);
        Assert.Equal([Download(".x.bin.partial")], TestFiles.Leftovers(Downloads));
        Assert.Equal(partialLength, new FileInfo(Download(".x.bin.partial")).Length);

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Eventually.WithinAsync(first, TimeSpan.FromSeconds(10), "the cancelled download"));
        await NewDownloader().DownloadAsync(Host, server.Port, "x.bin", Download("x.bin"), false, null, CancellationToken.None);
        Assert.Equal(hash, TestFiles.Sha256(Download("x.bin")));
        Assert.Equal([Download("x.bin")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_download_in_pieces_keeps_its_partial_file_from_a_second_download_and_from_cleaning()
    {
        const long length = 3L * ProtocolConstants.PieceSize;
        string hash = TestFiles.WriteRandom(Share("big.bin"), length);
        FileShareServer server = StartServer();
        var slow = new FileShareClientOptions { MaxBytesPerSecond = 4 * TestFiles.MiB, ReadTimeout = TimeSpan.FromSeconds(10) };
        var progress = new TransferProgress();
        Task<DownloadResult> first = NewDownloader(slow).DownloadAsync(Host, server.Port, "big.bin", Download("big.bin"), false, progress, CancellationToken.None);
        await Eventually.TrueAsync(() => progress.BytesReceived > 0, "the first download started");

        var refused = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader().DownloadAsync(Host, server.Port, "big.bin", Download("big.bin"), true, null, CancellationToken.None));
        IReadOnlyList<string> cleaned = await new PartialCleaner(Track(new ConnectionPool(ClientOptions())), _ => { }).CleanAsync(Downloads, CancellationToken.None);

        Assert.Equal(FileShareErrorKind.DestinationInUse, refused.Kind);
        Assert.False(first.IsCompleted);
        Assert.Empty(cleaned);
        DownloadResult result = await Eventually.WithinAsync(first, TimeSpan.FromSeconds(30), "the first download");
        Assert.Equal(hash, result.Sha256);
        Assert.Equal(hash, TestFiles.Sha256(Download("big.bin")));
        Assert.Equal([Download("big.bin")], TestFiles.Leftovers(Downloads));
    }
}

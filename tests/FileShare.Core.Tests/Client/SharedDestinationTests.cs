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

    [Theory]
    [InlineData(10_000, "file")]
    [InlineData(10_000, "nothing")]
    [InlineData(10_000, "folder")]
    [InlineData(2 * ProtocolConstants.PieceSize + 1, "file")]
    [InlineData(2 * ProtocolConstants.PieceSize + 1, "nothing")]
    [InlineData(2 * ProtocolConstants.PieceSize + 1, "folder")]
    public async Task A_link_under_the_partial_name_fails_the_download_and_nothing_is_written_through_it(int length, string leadsTo)
    {
        TestFiles.WriteRandom(Share("a.bin"), length);
        FileShareServer server = StartServer();
        string target = Path.Join(Temp.Path, "elsewhere.txt");
        if (leadsTo == "file")
        {
            File.WriteAllText(target, "not a download");
        }
        else if (leadsTo == "folder")
        {
            Directory.CreateDirectory(target);
        }

        File.CreateSymbolicLink(Download(".a.bin.partial"), target);

        var refused = await Assert.ThrowsAsync<FileShareException>(() => Eventually.WithinAsync(
            NewDownloader().DownloadAsync(Host, server.Port, "a.bin", Download("a.bin"), false, null, CancellationToken.None), TimeSpan.FromSeconds(15), "the download"));

        Assert.Equal(FileShareErrorKind.LocalWriteFailed, refused.Kind);
        Assert.Contains(Download(".a.bin.partial"), refused.Message);
        Assert.Contains("is a link", refused.Message);
        Assert.Equal(leadsTo == "file" ? "not a download" : null, File.Exists(target) ? File.ReadAllText(target) : null);
        Assert.Equal(leadsTo == "folder", Directory.Exists(target) && !Directory.EnumerateFileSystemEntries(target).Any());
        Assert.Equal(target, new FileInfo(Download(".a.bin.partial")).LinkTarget);
        Assert.False(File.Exists(Download("a.bin")));
    }

    [Fact]
    public async Task Cleaning_keeps_links_and_unrecorded_partial_names_unless_told_to_remove_the_unrecorded_and_never_leaves_the_destination()
    {
        string target = Path.Join(Temp.Path, "elsewhere.txt");
        File.WriteAllText(target, "not a download");
        File.CreateSymbolicLink(Download(".link.bin.partial"), target);
        Directory.CreateDirectory(Download("deep"));
        File.WriteAllText(Download("deep/.config.json.a1b2c3.partial"), "another program's temporary file");
        // A linked folder outside, holding what would be removed inside, and two links that make a loop.
        string outside = Temp.Create("outside");
        File.WriteAllText(Path.Join(outside, ".orphan.bin.partial.state"), "a record without its partial file");
        File.WriteAllText(Path.Join(outside, ".unrecorded.bin.partial"), "a partial file without its record");
        Directory.CreateSymbolicLink(Download("linked"), outside);
        Directory.CreateSymbolicLink(Download("deep/a"), Download("deep"));
        Directory.CreateSymbolicLink(Download("deep/b"), Download("deep"));
        var pool = Track(new ConnectionPool(ClientOptions()));
        var notices = new List<string>();

        IReadOnlyList<string> kept = await Eventually.WithinAsync(new PartialCleaner(pool, notices.Add).CleanAsync(Downloads, CancellationToken.None), TimeSpan.FromSeconds(15), "cleaning");
        IReadOnlyList<string> removed = await Eventually.WithinAsync(new PartialCleaner(pool, notices.Add) { RemoveUnrecorded = true }.CleanAsync(Downloads, CancellationToken.None), TimeSpan.FromSeconds(15), "cleaning");

        Assert.Empty(kept);
        Assert.Contains(notices, n => n.Contains(Download("deep/.config.json.a1b2c3.partial")) && n.Contains("-Force removes it"));
        Assert.Equal([Download("deep/.config.json.a1b2c3.partial")], removed);
        Assert.False(File.Exists(Download("deep/.config.json.a1b2c3.partial")));
        Assert.Equal(target, new FileInfo(Download(".link.bin.partial")).LinkTarget);
        Assert.Equal("not a download", File.ReadAllText(target));
        Assert.True(File.Exists(Path.Join(outside, ".orphan.bin.partial.state")), "a record outside the destination was removed");
        Assert.True(File.Exists(Path.Join(outside, ".unrecorded.bin.partial")), "a partial file outside the destination was removed");
    }
}

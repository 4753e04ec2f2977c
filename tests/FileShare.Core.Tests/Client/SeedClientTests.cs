using FileShare.Client;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

/// <summary>Our client against seed_server.py, a stand-in for a server of the original program.</summary>
public sealed class SeedClientTests : ServerTestBase
{
    [Theory]
    [InlineData(WireProtocol.Auto, 0)]
    [InlineData(WireProtocol.Auto, TestFiles.MiB + 1)]
    [InlineData(WireProtocol.Seed, 1)]
    [InlineData(WireProtocol.Seed, 3 * TestFiles.MiB)]
    public async Task A_file_arrives_intact_from_an_original_server(WireProtocol protocol, int length)
    {
        string hash = TestFiles.WriteRandom(Share("file.bin"), length);
        int port = await StartSeedServerAsync();
        var progress = new TransferProgress();

        DownloadResult result = await NewDownloader(ClientOptions(protocol)).DownloadAsync(Host, port, "file.bin", Download("file.bin"), false, progress, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("file.bin")));
        Assert.Equal((WireProtocol.Seed, (long)length), (result.Protocol, result.Length));
        Assert.Equal(length, progress.BytesReceived);
        Assert.Equal([Download("file.bin")], TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task Auto_detection_is_remembered_for_later_downloads_from_the_same_server()
    {
        File.WriteAllText(Share("a.txt"), "a");
        File.WriteAllText(Share("b.txt"), "b");
        int port = await StartSeedServerAsync();
        var pool = Track(new ConnectionPool(ClientOptions()));
        var downloader = new FileDownloader(pool);

        await downloader.DownloadAsync(Host, port, "a.txt", Download("a.txt"), false, null, CancellationToken.None);

        Assert.True(pool.IsSeedServer(Host, port));
        DownloadResult second = await downloader.DownloadAsync(Host, port, "b.txt", Download("b.txt"), false, null, CancellationToken.None);
        Assert.Equal(WireProtocol.Seed, second.Protocol);
        Assert.Equal("b", File.ReadAllText(Download("b.txt")));
    }

    [Fact]
    public async Task A_unicode_name_with_spaces_reaches_the_original_server_as_utf8()
    {
        const string name = "naïve fïlé ✓.txt";
        string hash = TestFiles.WriteRandom(Share(name), 5000);
        int port = await StartSeedServerAsync();

        await NewDownloader(ClientOptions(WireProtocol.Seed)).DownloadAsync(Host, port, name, Download("out.txt"), false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("out.txt")));
    }

    [Theory]
    [InlineData(WireProtocol.Auto)]
    [InlineData(WireProtocol.Seed)]
    public async Task A_missing_file_on_an_original_server_is_not_found_and_leaves_nothing(WireProtocol protocol)
    {
        int port = await StartSeedServerAsync();

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader(ClientOptions(protocol)).DownloadAsync(Host, port, "missing.bin", Download("missing.bin"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.NotFound, error.Kind);
        Assert.Contains("'missing.bin'", error.Message);
        Assert.Contains(EndpointOf(port), error.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task An_original_servers_error_answer_is_a_server_error()
    {
        Directory.CreateDirectory(Share("folder"));
        int port = await StartSeedServerAsync();

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader(ClientOptions(WireProtocol.Seed)).DownloadAsync(Host, port, "folder", Download("folder"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.ServerError, error.Kind);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_name_longer_than_the_original_protocol_allows_is_refused_before_connecting()
    {
        string name = new('é', 513);

        var error = await Assert.ThrowsAsync<FileShareException>(() =>
            NewDownloader(ClientOptions(WireProtocol.Seed)).DownloadAsync(Host, 1, name, Download("x"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.InvalidPath, error.Kind);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    private async Task<int> StartSeedServerAsync()
    {
        (PythonPeer peer, int port) = await PythonPeer.StartSeedServerAsync(ShareRoot);
        Track(peer);
        return port;
    }
}

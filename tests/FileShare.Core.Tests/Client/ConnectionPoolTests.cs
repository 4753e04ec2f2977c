using FileShare.Client;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

public sealed class ConnectionPoolTests : ServerTestBase
{
    [Fact]
    public async Task Many_sequential_downloads_share_one_connection()
    {
        string[] hashes = Enumerable.Range(0, 40).Select(i => TestFiles.WriteRandom(Share($"f{i}.bin"), 1000 + i)).ToArray();
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader();

        for (int i = 0; i < 40; i++)
        {
            await downloader.DownloadAsync(Host, server.Port, $"f{i}.bin", Download($"f{i}.bin"), false, null, CancellationToken.None);
        }

        Assert.All(Enumerable.Range(0, 40), i => Assert.Equal(hashes[i], TestFiles.Sha256(Download($"f{i}.bin"))));
        Assert.Equal(1, server.Statistics.TotalConnections);
        // Each verified download is two requests: the digest, then the bytes.
        await Eventually.TrueAsync(() => server.Statistics.Requests == 80, "the server counted every request");
    }

    [Fact]
    public async Task A_refused_request_does_not_cost_the_connection()
    {
        File.WriteAllText(Share("here.txt"), "here");
        FileShareServer server = StartServer();
        FileDownloader downloader = NewDownloader();

        var missing = await Assert.ThrowsAsync<FileShareException>(() => downloader.DownloadAsync(Host, server.Port, "gone.txt", Download("gone.txt"), false, null, CancellationToken.None));
        Assert.Equal(FileShareErrorKind.NotFound, missing.Kind);
        var outside = await Assert.ThrowsAsync<FileShareException>(() => downloader.DownloadAsync(Host, server.Port, "../x", Download("x"), false, null, CancellationToken.None));
        Assert.Equal(FileShareErrorKind.PathRefused, outside.Kind);
        await downloader.DownloadAsync(Host, server.Port, "here.txt", Download("here.txt"), false, null, CancellationToken.None);

        Assert.Equal("here", File.ReadAllText(Download("here.txt")));
        Assert.Equal(1, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task A_pooled_connection_the_server_closed_while_idle_is_replaced_transparently()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartServer(idleTimeout: TimeSpan.FromMilliseconds(200));
        FileDownloader downloader = NewDownloader();
        await downloader.DownloadAsync(Host, server.Port, "a.txt", Download("first.txt"), false, null, CancellationToken.None);
        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "the server closed the idle connection");

        await downloader.DownloadAsync(Host, server.Port, "a.txt", Download("second.txt"), false, null, CancellationToken.None);

        Assert.Equal("a", File.ReadAllText(Download("second.txt")));
        Assert.Equal(2, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task Connections_to_different_servers_are_kept_apart()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer first = StartServer();
        FileShareServer second = StartServer();
        using var pool = new ConnectionPool(ClientOptions());

        (FileShareConnection one, _) = await pool.RentAsync(Host, first.Port, CancellationToken.None);
        pool.Return(one);
        (FileShareConnection two, bool reused) = await pool.RentAsync(Host, second.Port, CancellationToken.None);
        using (two)
        {
            Assert.False(reused);
            Assert.Equal(EndpointOf(second.Port), two.Endpoint);
        }

        (FileShareConnection again, reused) = await pool.RentAsync(Host, first.Port, CancellationToken.None);
        using (again)
        {
            Assert.True(reused);
            Assert.Same(one, again);
        }
    }

    [Fact]
    public async Task A_connection_left_mid_range_is_not_pooled()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartServer();
        using var pool = new ConnectionPool(ClientOptions());
        (FileShareConnection connection, _) = await pool.RentAsync(Host, server.Port, CancellationToken.None);
        await connection.RequestRangeAsync("a.txt", 0, -1, CancellationToken.None);

        pool.Return(connection);

        (FileShareConnection next, bool reused) = await pool.RentAsync(Host, server.Port, CancellationToken.None);
        using (next)
        {
            Assert.False(reused);
        }
    }

    [Fact]
    public async Task Disposing_the_pool_closes_its_idle_connections()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartServer();
        var pool = new ConnectionPool(ClientOptions());
        await new FileDownloader(pool).DownloadAsync(Host, server.Port, "a.txt", Download("a.txt"), false, null, CancellationToken.None);
        Assert.Equal(1, server.Statistics.ActiveConnections);

        pool.Dispose();

        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "the server saw the pooled connection close");
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pool.RentAsync(Host, server.Port, CancellationToken.None));
    }
}

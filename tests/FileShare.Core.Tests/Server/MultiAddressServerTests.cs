using System.Net;
using System.Net.Sockets;
using FileShare.Client;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>One server listening on several addresses (both loopbacks here) on one port.</summary>
public sealed class MultiAddressServerTests : ServerTestBase
{
    private static readonly IPAddress[] BothLoopbacks = [IPAddress.Loopback, IPAddress.IPv6Loopback];

    // TEST-NET-3 (RFC 5737): documentation only, so no machine running the tests has it; binding it sends nothing.
    private static readonly IPAddress NotOnThisMachine = IPAddress.Parse("203.0.113.7");

    [Fact]
    public async Task A_client_on_each_loopback_downloads_the_same_file_from_one_server_on_one_port()
    {
        string hash = TestFiles.WriteRandom(Share("data.bin"), 3L * TestFiles.MiB + 17);
        FileShareServer server = StartOnBothLoopbacks();

        Assert.Equal([new IPEndPoint(IPAddress.Loopback, server.Port), new IPEndPoint(IPAddress.IPv6Loopback, server.Port)], server.LocalEndPoints);
        await NewDownloader().DownloadAsync("127.0.0.1", server.Port, "data.bin", Download("v4.bin"), false, null, CancellationToken.None);
        await NewDownloader().DownloadAsync("::1", server.Port, "data.bin", Download("v6.bin"), false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("v4.bin")));
        Assert.Equal(hash, TestFiles.Sha256(Download("v6.bin")));
        Assert.Equal(2, server.Statistics.TotalConnections);
    }

    [Fact]
    public async Task Max_connections_counts_the_clients_of_every_address_together()
    {
        FileShareServer server = StartServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddresses = BothLoopbacks, MaxConnections = 1 });
        using FileShareConnection first = await FileShareConnection.ConnectAsync("127.0.0.1", server.Port, ClientOptions(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync("::1", server.Port, new FileShareClientOptions { BusyRetryTime = TimeSpan.Zero }, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.Busy, error.Kind);
        Assert.Contains($"[::1]:{server.Port}", error.Message);
    }

    [Fact]
    public async Task Stopping_frees_the_port_on_every_address()
    {
        File.WriteAllText(Share("a.txt"), "a");
        FileShareServer server = StartOnBothLoopbacks();

        // The pooled connections stay open, so the server closes them first: its side lingers in TIME_WAIT on both addresses.
        FileDownloader downloader = NewDownloader();
        await downloader.DownloadAsync("127.0.0.1", server.Port, "a.txt", Download("v4.txt"), false, null, CancellationToken.None);
        await downloader.DownloadAsync("::1", server.Port, "a.txt", Download("v6.txt"), false, null, CancellationToken.None);

        await server.StopAsync(TimeSpan.FromSeconds(5));

        foreach (IPAddress address in BothLoopbacks)
        {
            using Socket again = BindWithoutReuse(address, server.Port);
        }
    }

    [Fact]
    public void A_port_taken_on_one_address_fails_the_start_naming_it_and_leaves_nothing_bound()
    {
        using Socket holder = BindWithoutReuse(IPAddress.IPv6Loopback, 0);
        int port = ((IPEndPoint)holder.LocalEndPoint!).Port;
        string root = Path.Join(Temp.Path, "never-created");

        var error = Assert.Throws<FileShareException>(() => StartServer(new FileShareServerOptions { Port = port, Root = root, BindAddresses = BothLoopbacks }));

        Assert.Equal(FileShareErrorKind.PortInUse, error.Kind);
        Assert.Equal($"[::1]:{port}", error.Endpoint);
        Assert.Contains($"[::1]:{port}", error.Message);
        using Socket ipv4 = BindWithoutReuse(IPAddress.Loopback, port);
        Assert.False(Directory.Exists(root), "The share folder was created for a server that did not start.");
    }

    [Fact]
    public void An_address_not_on_this_machine_fails_the_start_naming_it_and_frees_the_addresses_bound_before_it()
    {
        var error = Assert.Throws<FileShareException>(() => StartServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddresses = [IPAddress.Loopback, NotOnThisMachine] }));

        Assert.Equal(FileShareErrorKind.BindFailed, error.Kind);
        Assert.StartsWith($"{NotOnThisMachine}:", error.Endpoint);
        Assert.Contains(error.Endpoint!, error.Message);
        int port = int.Parse(error.Endpoint!.Split(':')[1]);
        using Socket ipv4 = BindWithoutReuse(IPAddress.Loopback, port);
    }

    [Fact]
    public void With_port_zero_a_chosen_port_taken_on_a_later_address_fails_the_start_saying_so_and_frees_the_first()
    {
        // The wildcard cannot share a port with 127.0.0.1 (no address reuse), so the port chosen for the first address is
        // always taken for the second; the bind fails and nothing ever listens beyond loopback.
        var error = Assert.Throws<FileShareException>(() => StartServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddresses = [IPAddress.Loopback, IPAddress.Any] }));

        Assert.Equal(FileShareErrorKind.PortInUse, error.Kind);
        int port = int.Parse(error.Endpoint!.Split(':')[1]);
        Assert.Equal($"0.0.0.0:{port}", error.Endpoint);
        Assert.Contains($"which the system chose for 127.0.0.1:{port}, is already in use on 0.0.0.0:{port}; start again", error.Message);
        using Socket ipv4 = BindWithoutReuse(IPAddress.Loopback, port);
    }

    private FileShareServer StartOnBothLoopbacks() =>
        StartServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddresses = BothLoopbacks });

    /// <summary>Binds as the server does (no address reuse), so it fails while anything still holds the port there.</summary>
    private static Socket BindWithoutReuse(IPAddress address, int port)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen();
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

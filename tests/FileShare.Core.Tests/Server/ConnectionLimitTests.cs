using System.Net;
using System.Net.Sockets;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>One client address cannot take the server from the others.</summary>
public sealed class ConnectionLimitTests : ServerTestBase
{
    [Fact]
    public async Task Connections_past_the_per_address_limit_are_busy_while_other_addresses_are_served()
    {
        FileShareServer server = StartServer(new FileShareServerOptions { Port = 0, Root = ShareRoot, BindAddress = IPAddress.Any, MaxConnectionsPerAddress = 2 });
        using Socket first = await HandshakeFromAsync(IPAddress.Parse("127.0.0.2"), server.Port, StatusCode.Ok);
        using Socket second = await HandshakeFromAsync(IPAddress.Parse("127.0.0.2"), server.Port, StatusCode.Ok);

        using Socket third = await HandshakeFromAsync(IPAddress.Parse("127.0.0.2"), server.Port, StatusCode.Busy);
        using Socket other = await HandshakeFromAsync(IPAddress.Parse("127.0.0.3"), server.Port, StatusCode.Ok);

        first.Dispose();
        // Two remain (second, other): the busy third closes by itself, so "at most three" could be reached before the first is gone.
        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 2, "the first and the busy third connection are gone");
        using Socket again = await HandshakeFromAsync(IPAddress.Parse("127.0.0.2"), server.Port, StatusCode.Ok);
    }

    [Fact]
    public async Task A_flood_of_silent_connections_from_one_address_does_not_stop_another_client_downloading()
    {
        string hash = TestFiles.WriteRandom(Share("payload.bin"), 32L * TestFiles.MiB);
        FileShareServer server = StartServer(new FileShareServerOptions
        {
            Port = 0,
            Root = ShareRoot,
            BindAddress = IPAddress.Any,
            MaxConnectionsPerAddress = 20,
            HandshakeTimeout = TimeSpan.FromSeconds(2),
        });
        List<Socket> flood = await SilentConnectionsAsync(IPAddress.Parse("127.0.0.4"), server.Port, 200);
        try
        {
            using (var pool = new FileShare.Client.ConnectionPool(ClientOptions()))
            {
                await new FileShare.Client.FileDownloader(pool).DownloadAsync(Host, server.Port, "payload.bin", Download("payload.bin"), false, null, CancellationToken.None);
            }

            Assert.Equal(hash, TestFiles.Sha256(Download("payload.bin")));
            await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "silent connections are dropped after the handshake timeout", TimeSpan.FromSeconds(20));
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task Silent_connections_past_one_addresss_share_take_no_serving_slot_and_past_twice_it_are_turned_away_at_once()
    {
        FileShareServer server = StartServer(new FileShareServerOptions
        {
            Port = 0,
            Root = ShareRoot,
            BindAddress = IPAddress.Any,
            MaxConnections = 8,
            MaxConnectionsPerAddress = 2,
        });
        List<Socket> flood = await SilentConnectionsAsync(IPAddress.Parse("127.0.0.5"), server.Port, 30);
        try
        {
            // Two are served, two more are told "busy" once they say hello; the other 26 are told at once and closed.
            await Eventually.TrueAsync(() => server.Statistics.ConnectionsRefused == 26, "the connections past twice the address's share were turned away");
            await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 4, "four connections are held");
            using Socket other = await HandshakeFromAsync(IPAddress.Parse("127.0.0.3"), server.Port, StatusCode.Ok);
        }
        finally
        {
            flood.ForEach(s => s.Dispose());
        }
    }

    /// <summary><paramref name="count"/> connections from <paramref name="from"/> that never send a byte.</summary>
    private static async Task<List<Socket>> SilentConnectionsAsync(IPAddress from, int port, int count)
    {
        var sockets = new List<Socket>(count);
        for (int i = 0; i < count; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(from, 0));
            await socket.ConnectAsync(IPAddress.Loopback, port);
            sockets.Add(socket);
        }

        return sockets;
    }

    /// <summary>Connects from <paramref name="from"/>, sends the FileShare hello and asserts the server's status.</summary>
    private static async Task<Socket> HandshakeFromAsync(IPAddress from, int port, StatusCode expected)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(from, 0));
        await socket.ConnectAsync(IPAddress.Loopback, port);
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, 0);
        await socket.SendAsync(hello, SocketFlags.None);
        int received = 0;
        while (received < hello.Length)
        {
            int read = await socket.ReceiveAsync(hello.AsMemory(received), SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.NotEqual(0, read);
            received += read;
        }

        (_, ushort status, _) = Messages.ReadHello(hello);
        Assert.Equal(expected, (StatusCode)status);
        return socket;
    }
}

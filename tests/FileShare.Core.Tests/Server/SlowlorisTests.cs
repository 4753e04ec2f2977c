using System.Net;
using System.Net.Sockets;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>Hundreds of connections that hold on while doing next to nothing cannot stop a normal client.</summary>
public sealed class SlowlorisTests : ServerTestBase
{
    private const int PerKind = 125;
    private const int Addresses = 10;

    [Fact]
    public async Task Five_hundred_idle_and_trickling_connections_are_dropped_while_a_normal_client_downloads_at_full_speed()
    {
        string hash = TestFiles.WriteRandom(Share("payload.bin"), 64L * TestFiles.MiB);
        // 500 connections come from ten loopback addresses, 50 each, under the default per-address limit of 64.
        // Only the server-wide limit is raised (from 256), so every attacker gets in and meets the limit under test.
        FileShareServer server = StartServer(new FileShareServerOptions
        {
            Root = ShareRoot,
            BindAddress = IPAddress.Any,
            MaxConnections = 600,
            // Long enough that the normal client's hello is answered on a loaded machine busy with 500 connections (at
            // 2 s it once was not, and the client found its connection closed), well short of a trickled hello's 12 s.
            HandshakeTimeout = TimeSpan.FromSeconds(5),
            MinDataRate = 256 * 1024,
            MinDataRateGracePeriod = TimeSpan.FromSeconds(1),
        });
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, 0);
        byte[] stat = RawPeer.Frame(FrameType.StatRequest, 1, RawPeer.PathBody("payload.bin"));
        byte[] read = RawPeer.Frame(FrameType.ReadRequest, 1, RawPeer.PathBody("payload.bin", (0, -1)));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var attackers = new List<Task>();
        for (int i = 0; i < 4 * PerKind; i++)
        {
            var from = IPAddress.Parse($"127.0.0.{10 + i % Addresses}");
            int kind = i % 4;
            attackers.Add(Task.Run(async () =>
            {
                using RawPeer peer = await ConnectFromAsync(from, server.Port, stop.Token);
                switch (kind)
                {
                    case 0:
                        break;
                    case 1:
                        await IgnoringHangUp(LimitTests.TrickleAsync(peer, hello, TimeSpan.FromSeconds(1), stop.Token));
                        break;
                    case 2:
                        await HandshakeAsync(peer, hello, stop.Token);
                        await IgnoringHangUp(LimitTests.TrickleAsync(peer, stat, TimeSpan.FromMilliseconds(200), stop.Token));
                        break;
                    default:
                        await HandshakeAsync(peer, hello, stop.Token);
                        await peer.SendAsync(read, stop.Token);
                        await LimitTests.ReadSlowlyAsync(peer, 1024, TimeSpan.FromMilliseconds(100), stop.Token);
                        break;
                }

                await peer.DrainUntilClosedAsync(TimeSpan.FromSeconds(30));
            }));
        }

        await Eventually.TrueAsync(() => server.Statistics.TotalConnections >= 4 * PerKind, "every attacker got in", TimeSpan.FromSeconds(30));
        using (var pool = new ConnectionPool(ClientOptions()))
        {
            await new FileDownloader(pool).DownloadAsync(Host, server.Port, "payload.bin", Download("payload.bin"), false, null, stop.Token);
        }

        Assert.Equal(hash, TestFiles.Sha256(Download("payload.bin")));
        await Eventually.WithinAsync(Task.WhenAll(attackers), TimeSpan.FromSeconds(45), "every attacker was dropped");
        Assert.Equal(2 * PerKind, server.Statistics.HandshakeTimeouts);
        Assert.Equal(2 * PerKind, server.Statistics.SlowConnectionsDropped);
        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "no connection is left", TimeSpan.FromSeconds(10));
    }

    private static async Task<RawPeer> ConnectFromAsync(IPAddress from, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        socket.Bind(new IPEndPoint(from, 0));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        return RawPeer.Wrap(socket);
    }

    private static async Task HandshakeAsync(RawPeer peer, byte[] hello, CancellationToken cancellationToken)
    {
        await peer.SendAsync(hello, cancellationToken);
        byte[] answer = new byte[ProtocolConstants.HelloLength];
        await peer.Stream.ReadExactlyAsync(answer, cancellationToken);
        Assert.Equal(StatusCode.Ok, (StatusCode)Messages.ReadHello(answer).Second);
    }

    private static async Task IgnoringHangUp(Task trickling)
    {
        try
        {
            await trickling;
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // The server hung up mid-trickle, which is the point.
        }
    }
}

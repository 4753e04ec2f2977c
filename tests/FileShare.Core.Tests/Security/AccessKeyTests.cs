using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Security;

/// <summary>The access key over real sockets: who gets in, who does not, and what the server gives away.</summary>
public sealed class AccessKeyTests : SecuredServerTestBase
{
    [Fact]
    public async Task The_right_key_lists_and_downloads_intact()
    {
        string hash = TestFiles.WriteRandom(Share("secret.bin"), 3 * TestFiles.MiB + 5);
        FileShareServer server = StartSecuredServer(Key);

        IReadOnlyList<RemoteEntry> listed = await (await ConnectAsync(server, Holding(Key))).ListAsync("", recursive: false, CancellationToken.None);
        await NewDownloader(Holding(AccessKey.FromText("  correct horse battery staple\n"))).DownloadAsync(Host, server.Port, "secret.bin", Download("secret.bin"), false, null, CancellationToken.None);

        Assert.Equal(["secret.bin"], listed.Select(e => e.Name));
        Assert.Equal(hash, TestFiles.Sha256(Download("secret.bin")));
    }

    [Fact]
    public async Task A_wrong_key_is_one_AuthenticationFailed_error_and_the_server_serves_nothing()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(Key);

        FileShareException refused = await RefusedAsync(server, Holding(OtherKey));

        Assert.Equal(FileShareErrorKind.AuthenticationFailed, refused.Kind);
        await AssertRefusedWithoutDataAsync(server, nameof(StatusCode.AuthenticationFailed));
    }

    [Fact]
    public async Task No_key_is_AuthenticationRequired_and_says_how_to_give_one()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(Key);

        FileShareException refused = await RefusedAsync(server, Holding());

        Assert.Equal(FileShareErrorKind.AuthenticationRequired, refused.Kind);
        Assert.Contains("FILESHARE_ACCESS_KEY", refused.Message);
        await AssertRefusedWithoutDataAsync(server, nameof(StatusCode.AuthenticationRequired));
    }

    [Fact]
    public async Task A_client_with_a_key_refuses_a_server_without_one_before_asking_for_anything()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer();

        FileShareException refused = await RefusedAsync(server, Holding(Key));

        Assert.Equal(FileShareErrorKind.AuthenticationFailed, refused.Kind);
        Assert.Contains("holds no access key", refused.Message);
        Assert.Equal(0, server.Statistics.BytesSent);
        Assert.DoesNotContain(Log, r => r.Request != RequestKind.Handshake);
    }

    [Fact]
    public async Task A_client_with_a_key_does_not_fall_back_to_the_keyless_original_protocol()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        (PythonPeer peer, int seedPort) = await PythonPeer.StartSeedServerAsync(ShareRoot);
        Track(peer);

        var refused = await Assert.ThrowsAsync<FileShareException>(() => NewDownloader(Holding(Key)).DownloadAsync(Host, seedPort, "secret.bin", Download("secret.bin"), false, null, CancellationToken.None));

        Assert.Equal(FileShareErrorKind.AuthenticationFailed, refused.Kind);
        Assert.Empty(TestFiles.Leftovers(Downloads));
    }

    [Fact]
    public async Task A_keyed_server_refuses_clients_of_the_original_protocol()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(Key);

        FileShareException refused = await RefusedAsync(server, ClientOptions(WireProtocol.Seed));

        Assert.Equal(FileShareErrorKind.ServerError, refused.Kind);
        await AssertRefusedWithoutDataAsync(server, nameof(StatusCode.AuthenticationRequired));
    }

    [Fact]
    public async Task A_replayed_handshake_is_refused()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(Key);
        using var relay = new TamperingRelay(server.Port);
        using (FileShareConnection recorded = await FileShareConnection.ConnectAsync(Host, relay.Port, Holding(Key), CancellationToken.None))
        {
            await recorded.ListAsync("", recursive: false, CancellationToken.None);
        }

        await Eventually.TrueAsync(() => Log.Count(r => r.Request == RequestKind.List) == 1, "the recorded listing was served");
        byte[] captured = relay.SentByClients();
        int handshake = ProtocolConstants.HelloLength + MutualAuthentication.ResponseLength;
        Assert.True(captured.Length > handshake, "the capture holds the handshake and the list request");
        using Socket attacker = await ConnectRawAsync(server.Port);

        // The handshake only: the server reads no further, and unread bytes would make its close a reset.
        await attacker.SendAsync(captured.AsMemory(0, handshake), SocketFlags.None);
        byte[] answer = await ReceiveUntilClosedAsync(attacker);

        // Hello, the server's fresh challenge, then a refusal: no listing frame.
        Assert.Equal(ProtocolConstants.HelloLength + MutualAuthentication.ChallengeLength + MutualAuthentication.ResultLength, answer.Length);
        Assert.Equal(StatusCode.AuthenticationFailed, (StatusCode)BinaryPrimitives.ReadUInt16BigEndian(answer.AsSpan(answer.Length - MutualAuthentication.ResultLength)));
        await Eventually.TrueAsync(() => Log.Any(r => r.Outcome == nameof(StatusCode.AuthenticationFailed)), "the server logged the replay");
        Assert.Equal(1, Log.Count(r => r.Request == RequestKind.List));
    }

    [Fact]
    public async Task The_server_proves_nothing_to_a_client_that_has_not_proven_the_key()
    {
        FileShareServer server = StartSecuredServer(Key);
        using Socket attacker = await ConnectRawAsync(server.Port);
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, 1, 1, (uint)HandshakeFeatures.AccessKey);
        await attacker.SendAsync(hello, SocketFlags.None);
        byte[] challenge = new byte[ProtocolConstants.HelloLength + MutualAuthentication.ChallengeLength];
        await ReceiveExactlyAsync(attacker, challenge);

        // Reflect the server's own challenge back as the client's nonce, with a made-up proof.
        byte[] response = new byte[MutualAuthentication.ResponseLength];
        challenge.AsSpan(ProtocolConstants.HelloLength).CopyTo(response);
        await attacker.SendAsync(response, SocketFlags.None);
        byte[] result = await ReceiveUntilClosedAsync(attacker);

        Assert.Equal(MutualAuthentication.ResultLength, result.Length);
        Assert.Equal(StatusCode.AuthenticationFailed, (StatusCode)BinaryPrimitives.ReadUInt16BigEndian(result));
        Assert.All(result.Skip(2), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task A_server_that_reflects_the_clients_proof_back_is_not_believed()
    {
        byte[]? reflected = null;
        using var impostor = new ScriptedServer(async (socket, stream, ct) =>
        {
            byte[] hello = new byte[ProtocolConstants.HelloLength];
            await stream.ReadExactlyAsync(hello, ct);
            Messages.WriteServerHello(hello, 1, StatusCode.Ok, (uint)HandshakeFeatures.AccessKey);
            await stream.WriteAsync(hello, ct);
            await stream.WriteAsync(new byte[MutualAuthentication.ChallengeLength], ct);
            byte[] response = new byte[MutualAuthentication.ResponseLength];
            await stream.ReadExactlyAsync(response, ct);
            reflected = response[ProtocolConstants.NonceLength..];
            await stream.WriteAsync(new byte[] { 0, 0 }.Concat(reflected).ToArray(), ct);
            _ = await stream.ReadAsync(new byte[1], ct);
        });

        var refused = await Assert.ThrowsAsync<FileShareException>(() => FileShareConnection.ConnectAsync(Host, impostor.Port, Holding(Key), CancellationToken.None));

        Assert.Equal(FileShareErrorKind.AuthenticationFailed, refused.Kind);
        Assert.Contains("did not prove", refused.Message);
        Assert.NotNull(reflected);
    }

    private static async Task<Socket> ConnectRawAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port);
        return socket;
    }

    private static async Task ReceiveExactlyAsync(Socket socket, byte[] buffer)
    {
        using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.ReadExactlyAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static async Task<byte[]> ReceiveUntilClosedAsync(Socket socket)
    {
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using var received = new MemoryStream();
        await stream.CopyToAsync(received).WaitAsync(TimeSpan.FromSeconds(10));
        return received.ToArray();
    }
}

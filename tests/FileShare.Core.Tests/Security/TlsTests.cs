using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Security;

/// <summary>TLS on the FileShare port over real sockets: pinning, refusals, and a man in the middle.</summary>
public sealed class TlsTests : SecuredServerTestBase
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_pinned_client_downloads_intact_through_TLS(bool withKey)
    {
        string hash = TestFiles.WriteRandom(Share("secret.bin"), 9 * TestFiles.MiB + 7);
        FileShareServer server = StartSecuredServer(withKey ? Key : null, Certificate);

        DownloadResult result = await NewDownloader(Holding(withKey ? Key : null, thumbprint: Thumbprint.ToLowerInvariant())).DownloadAsync(Host, server.Port, "secret.bin", Download("secret.bin"), false, null, CancellationToken.None);

        Assert.Equal(hash, TestFiles.Sha256(Download("secret.bin")));
        Assert.Equal(hash, result.Sha256);
        Assert.Equal(new FileInfo(Share("secret.bin")).Length, server.Statistics.BytesSent);
    }

    [Fact]
    public async Task A_SHA1_thumbprint_with_separators_pins_too()
    {
        File.WriteAllText(Share("secret.bin"), "hello");
        FileShareServer server = StartSecuredServer(certificate: Certificate);
        string sha1 = string.Join(':', Certificate.GetCertHashString().Chunk(2).Select(pair => new string(pair)));

        await NewDownloader(Holding(thumbprint: sha1)).DownloadAsync(Host, server.Port, "secret.bin", Download("secret.bin"), false, null, CancellationToken.None);

        Assert.Equal("hello", File.ReadAllText(Download("secret.bin")));
    }

    [Fact]
    public async Task A_wrong_thumbprint_is_one_clear_error_and_no_file_data_is_sent()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(Key, Certificate);
        string wrong = Convert.ToHexString(SHA256.HashData("another certificate"u8));

        FileShareException refused = await RefusedAsync(server, Holding(Key, thumbprint: wrong));

        Assert.Equal(FileShareErrorKind.TlsFailed, refused.Kind);
        Assert.Contains(Thumbprint, refused.Message);
        Assert.Contains(wrong, refused.Message);
        await AssertRefusedWithoutDataAsync(server, "HandshakeAbandoned");
    }

    [Fact]
    public async Task UseTls_refuses_a_self_signed_certificate_and_names_its_thumbprint()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(certificate: Certificate);

        FileShareException refused = await RefusedAsync(server, Holding(useTls: true));

        Assert.Equal(FileShareErrorKind.TlsFailed, refused.Kind);
        Assert.Contains($"-CertificateThumbprint {Thumbprint}", refused.Message);
        Assert.Equal(0, server.Statistics.BytesSent);
        Assert.DoesNotContain(Log, r => r.Request != RequestKind.Handshake);
    }

    [Fact]
    public async Task A_TLS_server_refuses_plaintext_clients_of_both_protocols()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(certificate: Certificate);

        FileShareException plain = await RefusedAsync(server, Holding());
        FileShareException seed = await RefusedAsync(server, ClientOptions(WireProtocol.Seed));

        Assert.Equal(FileShareErrorKind.TlsRequired, plain.Kind);
        Assert.Contains("-CertificateThumbprint", plain.Message);
        Assert.Equal(FileShareErrorKind.ServerError, seed.Kind);
        await Eventually.TrueAsync(() => Log.Count(r => r.Outcome == nameof(StatusCode.TlsRequired)) == 2, "both refusals are logged");
        await AssertRefusedWithoutDataAsync(server, nameof(StatusCode.TlsRequired));
    }

    [Fact]
    public async Task A_client_that_requires_TLS_refuses_a_plaintext_server()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer();

        FileShareException refused = await RefusedAsync(server, Holding(thumbprint: Thumbprint));

        Assert.Equal(FileShareErrorKind.TlsFailed, refused.Kind);
        Assert.DoesNotContain(Log, r => r.Request != RequestKind.Handshake);
    }

    [Fact]
    public async Task A_man_in_the_middle_that_terminates_TLS_fails_the_access_key_even_when_the_client_trusts_its_certificate()
    {
        TestFiles.WriteRandom(Share("secret.bin"), 1000);
        FileShareServer server = StartSecuredServer(Key, Certificate);
        using X509Certificate2 forged = ServerCertificate.LoadOrCreateSelfSigned("mallory", Temp.Create("mallory"));
        using var mallory = new TlsTerminatingRelay(server.Port, forged);

        // The user was tricked into pinning the relay's certificate: TLS succeeds on both legs, the key proofs do not.
        FileShareException refused = await RefusedAsync(server, Holding(Key, thumbprint: ServerCertificate.Sha256Thumbprint(forged)), mallory.Port);

        Assert.True(FileShareErrorKind.AuthenticationFailed == refused.Kind, refused.ToString() + mallory.Failure);
        Assert.True(mallory.BothLegsEstablished);
        await AssertRefusedWithoutDataAsync(server, nameof(StatusCode.AuthenticationFailed));
    }

    [Fact]
    public void A_self_signed_certificate_is_kept_private_and_reused()
    {
        string folder = Temp.Create("certificates");

        using X509Certificate2 first = ServerCertificate.LoadOrCreateSelfSigned("host.example", folder);
        using X509Certificate2 second = ServerCertificate.LoadOrCreateSelfSigned("host.example", folder);

        Assert.Equal(first.Thumbprint, second.Thumbprint);
        Assert.True(second.HasPrivateKey);
        string kept = Assert.Single(Directory.GetFiles(folder));
        Assert.Equal("host.example.pfx", Path.GetFileName(kept));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(kept));
        }
    }

    [Fact]
    public void A_damaged_self_signed_certificate_is_replaced_and_the_caller_is_told_the_new_thumbprint()
    {
        string folder = Temp.Create("certificates");
        string first;
        using (X509Certificate2 made = ServerCertificate.LoadOrCreateSelfSigned("host.example", folder))
        {
            first = ServerCertificate.Sha256Thumbprint(made);
        }

        string kept = Path.Join(folder, "host.example.pfx");
        File.WriteAllBytes(kept, File.ReadAllBytes(kept)[..100]);
        var told = new List<string>();

        using X509Certificate2 again = ServerCertificate.LoadOrCreateSelfSigned("host.example", folder, told.Add);

        string second = ServerCertificate.Sha256Thumbprint(again);
        Assert.NotEqual(first, second);
        string message = Assert.Single(told);
        Assert.Contains(kept, message);
        Assert.Contains(second, message);

        // The replacement is kept: the next start reuses it without a word.
        told.Clear();
        using X509Certificate2 reused = ServerCertificate.LoadOrCreateSelfSigned("host.example", folder, told.Add);
        Assert.Equal(second, ServerCertificate.Sha256Thumbprint(reused));
        Assert.Empty(told);
    }

    [Fact]
    public void Certificates_load_from_PEM_and_from_a_password_protected_PFX()
    {
        string pem = Path.Join(Temp.Path, "server.pem");
        File.WriteAllText(pem, Certificate.ExportCertificatePem() + "\n" + Certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        string pfx = Path.Join(Temp.Path, "server.pfx");
        File.WriteAllBytes(pfx, Certificate.Export(X509ContentType.Pkcs12, "pfx password"));

        using X509Certificate2 fromPem = ServerCertificate.Load(pem, password: null);
        using X509Certificate2 fromPfx = ServerCertificate.Load(pfx, "pfx password");

        Assert.All([fromPem, fromPfx], c => Assert.Equal((Certificate.Thumbprint, true), (c.Thumbprint, c.HasPrivateKey)));
        Assert.ThrowsAny<CryptographicException>(() => ServerCertificate.Load(pfx, "wrong"));
        File.WriteAllText(pem, Certificate.ExportCertificatePem());
        Assert.ThrowsAny<CryptographicException>(() => ServerCertificate.Load(pem, password: null));
    }

    /// <summary>
    /// Mallory: passes the hellos through, then runs TLS with the client under her own certificate and TLS with the
    /// server as a client, and relays the decrypted bytes between the two.
    /// </summary>
    private sealed class TlsTerminatingRelay : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly CancellationTokenSource _stop = new();

        public TlsTerminatingRelay(int serverPort, X509Certificate2 certificate)
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(4);
            Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
            _ = RelayAsync(serverPort, certificate);
        }

        public int Port { get; }

        public bool BothLegsEstablished { get; private set; }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Dispose();
        }

        private async Task RelayAsync(int serverPort, X509Certificate2 certificate)
        {
            try
            {
                using Socket client = await _listener.AcceptAsync(_stop.Token);
                using var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(new IPEndPoint(IPAddress.Loopback, serverPort), _stop.Token);
                using var toClient = new NetworkStream(client);
                using var toServer = new NetworkStream(server);
                byte[] hello = new byte[ProtocolConstants.HelloLength];
                await toClient.ReadExactlyAsync(hello, _stop.Token);
                await toServer.WriteAsync(hello, _stop.Token);
                await toServer.ReadExactlyAsync(hello, _stop.Token);
                await toClient.WriteAsync(hello, _stop.Token);

                using var clientLeg = new SslStream(toClient);
                using var serverLeg = new SslStream(toServer);
                await Task.WhenAll(
                    clientLeg.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate }, _stop.Token),
                    serverLeg.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", RemoteCertificateValidationCallback = (_, _, _, _) => true }, _stop.Token));
                BothLegsEstablished = true;
                await Task.WhenAny(clientLeg.CopyToAsync(serverLeg, _stop.Token), serverLeg.CopyToAsync(clientLeg, _stop.Token));
            }
            catch (Exception e)
            {
                Failure = e;
            }
        }

        public Exception? Failure { get; private set; }
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Security;

/// <summary>Servers with an access key and/or a certificate, each keeping its log, and clients that hold keys.</summary>
public abstract class SecuredServerTestBase : ServerTestBase
{
    protected static readonly AccessKey Key = AccessKey.FromText("correct horse battery staple");
    protected static readonly AccessKey OtherKey = AccessKey.FromText("correct horse battery stapler");

    private static readonly Lazy<X509Certificate2> SharedCertificate = new(() =>
        ServerCertificate.LoadOrCreateSelfSigned("fileshare-test", Directory.CreateTempSubdirectory("fileshare-cert-").FullName));

    protected ConcurrentQueue<RequestLogRecord> Log { get; } = new();

    /// <summary>One self-signed certificate for the whole run: making one costs more than a test should.</summary>
    protected static X509Certificate2 Certificate => SharedCertificate.Value;

    protected static string Thumbprint => ServerCertificate.Sha256Thumbprint(Certificate);

    protected FileShareServer StartSecuredServer(AccessKey? key = null, X509Certificate2? certificate = null)
    {
        FileShareServer server = StartServer(new FileShareServerOptions
        {
            Port = 0,
            Root = ShareRoot,
            BindAddress = IPAddress.Loopback,
            HandshakeTimeout = TimeSpan.FromSeconds(5),
            AccessKey = key,
            Certificate = certificate,
        });
        server.RequestCompleted = Log.Enqueue;
        return server;
    }

    protected static FileShareClientOptions Holding(AccessKey? key = null, string? thumbprint = null, bool useTls = false) => new()
    {
        ConnectTimeout = TimeSpan.FromSeconds(5),
        ReadTimeout = TimeSpan.FromSeconds(10),
        AccessKey = key,
        CertificateThumbprint = thumbprint,
        UseTls = useTls,
    };

    protected async Task<FileShareException> RefusedAsync(FileShareServer server, FileShareClientOptions options, int? port = null)
    {
        var refused = await Assert.ThrowsAsync<FileShareException>(() => NewDownloader(options).DownloadAsync(Host, port ?? server.Port, "secret.bin", Download("secret.bin"), false, null, CancellationToken.None));
        Assert.Equal(EndpointOf(port ?? server.Port), refused.Endpoint);
        Assert.Contains(EndpointOf(port ?? server.Port), refused.Message);
        Assert.Empty(TestFiles.Leftovers(Downloads));
        return refused;
    }

    /// <summary>The server logged the refusal and served nothing: no request records besides handshakes, no file bytes.</summary>
    protected async Task AssertRefusedWithoutDataAsync(FileShareServer server, string outcome)
    {
        await Eventually.TrueAsync(() => Log.Any(r => r.Request is RequestKind.Handshake or RequestKind.SeedGet && r.Outcome.StartsWith(outcome, StringComparison.Ordinal)), $"the server logged {outcome} (it logged: {string.Join("; ", Log.Select(r => $"{r.Request} {r.Outcome}"))})");
        Assert.All(Log, r => Assert.True(r.Request is RequestKind.Handshake or RequestKind.SeedGet && r.Outcome != "Ok", $"unexpected record {r}"));
        Assert.Equal(0, server.Statistics.BytesSent);
    }
}

using System.Management.Automation;
using System.Security.Cryptography.X509Certificates;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;
using FileShare.Server;

namespace FileShare.PowerShell.Tests;

/// <summary>The access key and TLS parameters of the cmdlets, against real servers on loopback.</summary>
public sealed class SecurityTests : IDisposable
{
    private const string Key = "a key only the team knows";
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;
    private readonly string _expected;

    public SecurityTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        _expected = TestFiles.Sha256(TestFiles.Write(_share, "secret.bin", 700_000));
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void A_key_from_AccessKeyPath_downloads_intact_and_a_listing_without_it_is_AuthenticationRequired()
    {
        FileShareServerJob job = StartKeyed(Key);
        string keyFile = Path.Join(_temp.Path, "share.key");
        File.WriteAllText(keyFile, Key + "\n");

        _session.Run("param($Port, $KeyFile) Get-RemoteFile secret.bin -ComputerName 127.0.0.1 -Port $Port -AccessKeyPath $KeyFile", new { job.Port, KeyFile = keyFile }).AssertNoErrors();
        ErrorRecord refused = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { job.Port })
            .SingleError("AuthenticationRequired", ErrorCategory.AuthenticationError);

        Assert.Equal(_expected, TestFiles.Sha256(Path.Join(_temp.Path, "localStorage", "secret.bin")));
        Assert.Contains($"127.0.0.1:{job.Port}", refused.Exception.Message);
        Assert.Contains("-AccessKey", refused.Exception.Message);
    }

    [Fact]
    public void A_wrong_key_is_one_AuthenticationFailed_error_the_server_logs_and_no_file_is_written()
    {
        FileShareServerJob job = StartKeyed(Key);

        ErrorRecord refused = _session.Run("param($Port) Get-RemoteFile secret.bin -ComputerName 127.0.0.1 -Port $Port -AccessKey (ConvertTo-SecureString 'guess' -AsPlainText -Force)", new { job.Port })
            .SingleError("AuthenticationFailed", ErrorCategory.AuthenticationError);

        Assert.Contains($"127.0.0.1:{job.Port}", refused.Exception.Message);
        Assert.Empty(TestFiles.List(Path.Join(_temp.Path, "localStorage")));
        RequestLogRecord[] log = [];
        Eventually.True(() => (log = ReceiveLog(job)).Length > 0, "the refusal is logged");
        Assert.Equal([(RequestKind.Handshake, "AuthenticationFailed")], log.Select(r => (r.Request, r.Outcome)));
        Assert.Equal(0, job.BytesSent);
    }

    [Fact]
    public void A_PFX_certificate_serves_pinned_clients_and_refuses_wrong_pins_and_plaintext()
    {
        string pfx = Path.Join(_temp.Path, "server.pfx");
        string thumbprint;
        using (X509Certificate2 certificate = ServerCertificate.LoadOrCreateSelfSigned("localhost", _temp.Folder("certificates")))
        {
            File.WriteAllBytes(pfx, certificate.Export(X509ContentType.Pkcs12, "pfx secret"));
            thumbprint = ServerCertificate.Sha256Thumbprint(certificate);
        }

        Invocation started = _session.Run("param($Path, $Pfx) Start-FileShareServer -Port 0 -Path $Path -BindAddress 127.0.0.1 -Certificate $Pfx -CertificatePassword (ConvertTo-SecureString 'pfx secret' -AsPlainText -Force) 6>&1",
            new { Path = _share, Pfx = pfx }).AssertNoErrors();
        FileShareServerJob job = Assert.Single(started.Objects<FileShareServerJob>());
        string announced = Assert.Single(started.Objects<InformationRecord>()).MessageData.ToString()!;

        ErrorRecord wrongPin = _session.Run("param($Port, $Pin) Get-RemoteFile secret.bin -ComputerName 127.0.0.1 -Port $Port -CertificateThumbprint $Pin", new { job.Port, Pin = new string('A', 64) })
            .SingleError("TlsHandshakeFailed", ErrorCategory.SecurityError);
        ErrorRecord plaintext = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { job.Port })
            .SingleError("TlsRequired", ErrorCategory.SecurityError);
        Assert.Empty(TestFiles.List(Path.Join(_temp.Path, "localStorage")));
        _session.Run("param($Port, $Pin) Get-RemoteFile secret.bin -ComputerName 127.0.0.1 -Port $Port -CertificateThumbprint $Pin", new { job.Port, Pin = thumbprint }).AssertNoErrors();

        Assert.Contains(thumbprint, announced);
        Assert.Contains(thumbprint, wrongPin.Exception.Message);
        Assert.Contains($"127.0.0.1:{job.Port}", plaintext.Exception.Message);
        Assert.Equal(_expected, TestFiles.Sha256(Path.Join(_temp.Path, "localStorage", "secret.bin")));
        Eventually.True(() => ReceiveLog(job).Any(r => r.Request == RequestKind.Read), "the pinned download is logged");
        Assert.Single(ReceiveLog(job), r => r.Request == RequestKind.Read);
    }

    [Fact]
    public void A_certificate_object_and_a_key_together_serve_a_pinned_keyed_listing_and_a_wrong_key_still_fails()
    {
        using X509Certificate2 certificate = ServerCertificate.LoadOrCreateSelfSigned("localhost", _temp.Folder("certificates"));
        Invocation started = _session.Run("param($Path, $Certificate) Start-FileShareServer -Port 0 -Path $Path -BindAddress 127.0.0.1 -Certificate $Certificate -AccessKey (ConvertTo-SecureString 'both' -AsPlainText -Force) 6>$null",
            new { Path = _share, Certificate = certificate }).AssertNoErrors();
        FileShareServerJob job = Assert.Single(started.Objects<FileShareServerJob>());
        // The pin comes from the server's own object, as a script would take it.
        string pin = Assert.Single(_session.Run("param($Port) (Get-FileShareServer -Port $Port).CertificateThumbprint", new { job.Port }).AssertNoErrors().Objects<string>());
        Assert.Equal(ServerCertificate.Sha256Thumbprint(certificate), pin);
        Assert.True(job.RequiresAccessKey);

        RemoteFileInfo listed = Assert.Single(_session.Run("param($Port, $Pin) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -CertificateThumbprint $Pin -AccessKey (ConvertTo-SecureString 'both' -AsPlainText -Force)",
            new { job.Port, Pin = pin }).AssertNoErrors().Objects<RemoteFileInfo>());
        _session.Run("param($Port, $Pin) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -CertificateThumbprint $Pin -AccessKey (ConvertTo-SecureString 'neither' -AsPlainText -Force)",
            new { job.Port, Pin = pin }).SingleError("AuthenticationFailed", ErrorCategory.AuthenticationError);

        Assert.Equal(("secret.bin", 700_000L), (listed.Name, listed.Length));
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("-BindAddress 127.0.0.1", false)]
    [InlineData("-AccessKey (ConvertTo-SecureString 'k' -AsPlainText -Force)", false)]
    public void Sharing_beyond_loopback_without_a_key_warns_how_to_add_one(string extra, bool warns)
    {
        Invocation started = _session.Run($"param($Path) Start-FileShareServer -Port 0 -Path $Path {extra} 3>&1", new { Path = _share }).AssertNoErrors();

        Assert.Single(started.Objects<FileShareServerJob>());
        WarningRecord[] warnings = started.Objects<WarningRecord>().ToArray();
        if (warns)
        {
            string warning = Assert.Single(warnings).Message;
            Assert.Contains("-AccessKey", warning);
            Assert.Contains("-AccessKeyPath", warning);
            Assert.Contains("$env:FILESHARE_ACCESS_KEY", warning);
        }
        else
        {
            Assert.Empty(warnings);
        }
    }

    [Fact]
    public void A_start_that_shares_nothing_warns_of_nothing()
    {
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.IPv6Any, 0);
        squatter.Server.DualMode = true;
        squatter.Start();
        int busy = ((System.Net.IPEndPoint)squatter.LocalEndpoint).Port;

        Invocation started = _session.Run("param($Path, $Port) Start-FileShareServer -Port $Port -Path $Path 3>&1", new { Path = _share, Port = busy });

        started.SingleError("PortInUse", ErrorCategory.ResourceBusy);
        Assert.Empty(started.Objects<WarningRecord>());
    }

    [Fact]
    public void A_keyed_start_says_that_clients_of_the_original_program_are_refused()
    {
        Invocation started = _session.Run("param($Path) Start-FileShareServer -Port 0 -Path $Path -BindAddress 127.0.0.1 -AccessKey (ConvertTo-SecureString 'k' -AsPlainText -Force) -Verbose", new { Path = _share })
            .AssertNoErrors();

        Assert.Contains(started.Verbose, v => v.Message.Contains("original", StringComparison.Ordinal) && v.Message.Contains("refused", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("-AccessKeyPath ./missing.key", "AccessKeyFileUnreadable", ErrorCategory.ReadError, typeof(IOException))]
    [InlineData("-CertificateThumbprint 1234", "InvalidCertificateThumbprint", ErrorCategory.InvalidArgument, typeof(ArgumentException))]
    public void Bad_security_arguments_fail_the_client_before_it_connects(string arguments, string id, ErrorCategory category, Type exception)
    {
        ErrorRecord error = _session.Run($"Get-RemoteFileList -ComputerName 127.0.0.1 -Port 1 {arguments}").SingleError(id, category);

        // What a script's catch [System.IO.IOException] or catch [System.ArgumentException] would take.
        Assert.IsAssignableFrom(exception, error.Exception);
    }

    [Fact]
    public void A_certificate_without_its_private_key_is_refused_at_start()
    {
        string pem = Path.Join(_temp.Path, "public.pem");
        using (X509Certificate2 certificate = ServerCertificate.LoadOrCreateSelfSigned("localhost", _temp.Folder("certificates")))
        {
            File.WriteAllText(pem, certificate.ExportCertificatePem());
        }

        _session.Run("param($Path, $Pem) Start-FileShareServer -Port 0 -Path $Path -BindAddress 127.0.0.1 -Certificate $Pem", new { Path = _share, Pem = pem })
            .SingleError("CertificateInvalid", ErrorCategory.InvalidArgument);
        Assert.Empty(_session.Jobs());
    }

    private FileShareServerJob StartKeyed(string key) =>
        _session.StartServer(_share, $"-AccessKey (ConvertTo-SecureString '{key}' -AsPlainText -Force)");

    private RequestLogRecord[] ReceiveLog(FileShareServerJob job) =>
        _session.Run("param($Job) Receive-Job -Job $Job -Keep", new { Job = job }).AssertNoErrors().Objects<RequestLogRecord>().ToArray();
}

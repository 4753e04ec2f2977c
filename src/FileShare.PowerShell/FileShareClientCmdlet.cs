using System.Management.Automation;
using System.Security;
using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>The parameters every cmdlet that talks to a server shares: the access key and TLS.</summary>
public abstract class FileShareClientCmdlet : FileShareCmdlet
{
    /// <summary>Proves this key to the server and requires the server to prove it back.</summary>
    [Parameter]
    public SecureString? AccessKey { get; set; }

    /// <summary>A file holding the access key (UTF-8; surrounding white space ignored), for scripts.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? AccessKeyPath { get; set; }

    /// <summary>Requires TLS with exactly this certificate (SHA-256 thumbprint, or SHA-1).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CertificateThumbprint { get; set; }

    /// <summary>Requires TLS with a certificate this system trusts for the host name.</summary>
    [Parameter]
    public SwitchParameter UseTls { get; set; }

    /// <summary>-TimeoutSec bounds every wait for the server; connecting gets at most ten seconds of it.</summary>
    protected FileShareClientOptions ClientOptions(int timeoutSec, WireProtocol protocol = WireProtocol.Auto)
    {
        try
        {
            return new FileShareClientOptions
            {
                ReadTimeout = TimeSpan.FromSeconds(timeoutSec),
                ConnectTimeout = TimeSpan.FromSeconds(Math.Min(timeoutSec, 10)),
                Protocol = protocol,
                AccessKey = ResolveAccessKey(AccessKey, AccessKeyPath),
                UseTls = UseTls,
                CertificateThumbprint = CertificateThumbprint,
            };
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.Create("InvalidCertificateThumbprint", ErrorCategory.InvalidArgument, e.Message, CertificateThumbprint, e));
            throw;
        }
    }
}

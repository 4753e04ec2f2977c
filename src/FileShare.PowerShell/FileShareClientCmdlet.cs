using System.Management.Automation;
using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>The parameters every cmdlet that talks to a server shares: the access key (from the base) and TLS.</summary>
public abstract class FileShareClientCmdlet : AccessKeyCmdlet
{
    /// <summary>Requires TLS with exactly this certificate (SHA-256 thumbprint, or SHA-1).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CertificateThumbprint { get; set; }

    /// <summary>Requires TLS with a certificate this system trusts for the host name.</summary>
    [Parameter]
    public SwitchParameter UseTls { get; set; }

    /// <summary>-TimeoutSec bounds every wait for the server; connecting gets at most ten seconds of it. One options object per call, so a cap covers the whole call.</summary>
    protected FileShareClientOptions ClientOptions(int timeoutSec, WireProtocol protocol = WireProtocol.Auto, int concurrentDownloads = 1, long? maxBytesPerSecond = null)
    {
        // Resolved before the try below, whose ArgumentException can only be the thumbprint's.
        Protocol.AccessKey? accessKey = ResolveAccessKey();
        try
        {
            return new FileShareClientOptions
            {
                ReadTimeout = TimeSpan.FromSeconds(timeoutSec),
                BusyRetryTime = TimeSpan.FromSeconds(timeoutSec),
                ConnectTimeout = TimeSpan.FromSeconds(Math.Min(timeoutSec, 10)),
                Protocol = protocol,
                ReceiveBufferSize = FileShareClientOptions.ReceiveBufferFor(concurrentDownloads),
                MaxBytesPerSecond = maxBytesPerSecond,
                AccessKey = accessKey,
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

using System.Management.Automation;
using System.Net;
using System.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using FileShare.Server;

namespace FileShare.PowerShell;

/// <summary>
/// Start-FileShareServer's -Certificate (an X509Certificate2, or the path of a PFX or PEM file), -CertificatePassword
/// and -SelfSigned as the certificate to serve TLS with; null without TLS. Every problem is one terminating error.
/// </summary>
internal static class ServerCertificateArgument
{
    public static X509Certificate2? Resolve(FileShareCmdlet cmdlet, object? argument, SecureString? password, bool selfSigned)
    {
        if (argument is not null && selfSigned)
        {
            cmdlet.ThrowTerminatingError(ErrorRecords.Create("CertificateConflict", ErrorCategory.InvalidArgument, "Give -Certificate or -SelfSigned, not both.", argument));
        }

        object? given = argument is PSObject wrapped ? wrapped.BaseObject : argument;
        string source = given?.ToString() ?? "-SelfSigned";
        try
        {
            switch (given)
            {
                case X509Certificate2 certificate:
                    ServerCertificate.RequirePrivateKey(certificate, certificate.Subject);
                    return certificate;
                case string path:
                    source = cmdlet.FileSystemPath(path, "Certificate", "CertificateInvalid", $", or the certificate itself: -Certificate (Get-Item '{path}')");
                    return ServerCertificate.Load(source, password is null ? null : new NetworkCredential("", password).Password);
                case null when selfSigned:
                    source = ServerCertificate.SelfSignedFolder;
                    return ServerCertificate.LoadOrCreateSelfSigned(Dns.GetHostName(), source, cmdlet.WriteWarning);
                case null:
                    return null;
                default:
                    cmdlet.ThrowTerminatingError(ErrorRecords.Create("CertificateInvalid", ErrorCategory.InvalidArgument,
                        $"-Certificate takes an X509Certificate2 or the path of a PFX or PEM file, not a {given.GetType().Name}.", given));
                    return null;
            }
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            cmdlet.ThrowTerminatingError(ErrorRecords.Create("CertificateInvalid", ErrorCategory.InvalidArgument, $"Cannot use the certificate from {source}: {e.Message}", given, e));
            return null;
        }
    }
}

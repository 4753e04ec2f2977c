using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FileShare.Server;

/// <summary>Loads a server's TLS certificate from a file, or makes a self-signed one and keeps it for the next start.</summary>
public static class ServerCertificate
{
    /// <summary>Where -SelfSigned keeps its certificates: the user's local data folder (XDG_DATA_HOME on Linux).</summary>
    public static string SelfSignedFolder =>
        Path.Join(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "FileShare", "certificates");

    /// <summary>The SHA-256 thumbprint clients pin with -CertificateThumbprint: 64 upper-case hex digits.</summary>
    public static string Sha256Thumbprint(X509Certificate certificate) => Convert.ToHexString(SHA256.HashData(certificate.GetRawCertData()));

    /// <summary>
    /// A certificate with its private key from a PKCS#12 file (.pfx/.p12) or a PEM file holding the certificate and
    /// its key (encrypted when <paramref name="password"/> is given).
    /// </summary>
    public static X509Certificate2 Load(string path, string? password)
    {
        X509Certificate2 certificate = IsPem(path)
            ? ForTls(password is null ? X509Certificate2.CreateFromPemFile(path) : X509Certificate2.CreateFromEncryptedPemFile(path, password))
            : new X509Certificate2(path, password);
        RequirePrivateKey(certificate, path);
        return certificate;
    }

    public static void RequirePrivateKey(X509Certificate2 certificate, string source)
    {
        if (!certificate.HasPrivateKey)
        {
            throw new CryptographicException($"The certificate from '{source}' ({certificate.Subject}) has no private key, so a server cannot use it.");
        }
    }

    /// <summary>
    /// The self-signed certificate kept for <paramref name="hostName"/> in <paramref name="folder"/>, made on first
    /// use (ECDSA P-256, valid two years, names the host, localhost and the loopback addresses) and made again when
    /// it is about to expire.
    /// </summary>
    /// <param name="replaced">Told why a kept certificate was replaced: clients that pinned its thumbprint must pin the new one.</param>
    public static X509Certificate2 LoadOrCreateSelfSigned(string hostName, string folder, Action<string>? replaced = null)
    {
        string path = Path.Join(folder, string.Concat(hostName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' ? c : '_')) + ".pfx");
        string? why = null;
        if (File.Exists(path))
        {
            try
            {
                var kept = new X509Certificate2(path, (string?)null);
                if (kept.HasPrivateKey && kept.NotAfter.ToUniversalTime() > DateTime.UtcNow.AddDays(7))
                {
                    return kept;
                }

                why = kept.HasPrivateKey ? $"it expires {kept.NotAfter.ToUniversalTime():yyyy-MM-dd}" : "it holds no private key";
            }
            catch (CryptographicException e)
            {
                why = $"it could not be read ({e.Message.TrimEnd('.')})";
            }
        }

        byte[] pfx = CreateSelfSigned(hostName);
        Directory.CreateDirectory(folder);
        string temporary = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var owner = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            owner.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var file = new FileStream(temporary, owner))
        {
            file.Write(pfx);
        }

        File.Move(temporary, path, overwrite: true);
        var made = new X509Certificate2(pfx, (string?)null);
        if (why is not null)
        {
            replaced?.Invoke($"The self-signed certificate kept in '{path}' was replaced: {why}. Its SHA-256 thumbprint is now {Sha256Thumbprint(made)}; clients that pinned the old one must pin this one.");
        }

        return made;
    }

    private static byte[] CreateSelfSigned(string hostName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={hostName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(hostName);
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1", "Server Authentication")], false));
        using X509Certificate2 created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(2));
        return created.Export(X509ContentType.Pkcs12);
    }

    private static bool IsPem(string path)
    {
        using var reader = new StreamReader(path);
        char[] start = new char[64];
        int read = reader.ReadBlock(start);
        return new string(start, 0, read).TrimStart().StartsWith("-----BEGIN", StringComparison.Ordinal);
    }

    /// <summary>Windows' TLS stack cannot use a key that lives only in memory, as a PEM-loaded one does; a PKCS#12 round trip gives it a stored one.</summary>
    private static X509Certificate2 ForTls(X509Certificate2 certificate)
    {
        if (!OperatingSystem.IsWindows())
        {
            return certificate;
        }

        using (certificate)
        {
            return new X509Certificate2(certificate.Export(X509ContentType.Pkcs12));
        }
    }
}

using System.Globalization;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace FileShare.Client;

/// <summary>Decides whether the client trusts the certificate a server presents: a pinned thumbprint, or the system's trust store.</summary>
internal sealed class CertificatePin
{
    private readonly string? _thumbprint;

    public CertificatePin(string? thumbprint)
    {
        _thumbprint = thumbprint is null ? null : Normalize(thumbprint);
    }

    /// <summary>SHA-256 thumbprint of the certificate the server presented, for the error message when it is refused.</summary>
    public string? Seen { get; private set; }

    public SslPolicyErrors Errors { get; private set; }

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        Errors = errors;
        if (certificate is null)
        {
            return false;
        }

        Seen = Convert.ToHexString(SHA256.HashData(certificate.GetRawCertData()));
        return _thumbprint switch
        {
            null => errors == SslPolicyErrors.None,
            { Length: 64 } => CryptographicOperations.FixedTimeEquals(Convert.FromHexString(_thumbprint), Convert.FromHexString(Seen)),
            _ => string.Equals(_thumbprint, certificate.GetCertHashString(), StringComparison.OrdinalIgnoreCase),
        };
    }

    /// <summary>Why the certificate was refused, in words a user can act on.</summary>
    public string Describe() => _thumbprint is not null
        ? $"its certificate (SHA-256 {Seen}) does not match the pinned thumbprint {_thumbprint}"
        : $"its certificate is not trusted ({Errors}); pin it with -CertificateThumbprint {Seen}";

    /// <summary>Upper-case hex without separators; a thumbprint that is neither SHA-256 nor SHA-1 sized is an argument error.</summary>
    public static string Normalize(string thumbprint)
    {
        string hex = string.Concat(thumbprint.Where(c => c is not (':' or ' ' or '-'))).ToUpperInvariant();
        if (hex.Length is not (64 or 40) || !hex.All(char.IsAsciiHexDigit))
        {
            throw new ArgumentException(string.Format(CultureInfo.InvariantCulture,
                "'{0}' is not a certificate thumbprint: give the 64 hex digits of its SHA-256 (or the 40 of its SHA-1).", thumbprint), nameof(thumbprint));
        }

        return hex;
    }
}

using System.Security.Cryptography;
using System.Text;

namespace FileShare.Protocol;

/// <summary>
/// The secret a share and its clients hold in common. It only ever keys HMAC-SHA-256: it is never written to the
/// wire, a log record or <see cref="ToString"/>.
/// </summary>
public sealed class AccessKey
{
    private readonly byte[] _secret;

    public AccessKey(ReadOnlySpan<byte> secret)
    {
        if (secret.IsEmpty)
        {
            throw new ArgumentException("An access key cannot be empty.", nameof(secret));
        }

        _secret = secret.ToArray();
    }

    /// <summary>
    /// A key typed, stored in a file or in an environment variable: its UTF-8 bytes without surrounding white space,
    /// so the newline an editor adds to a key file is not part of the key.
    /// </summary>
    public static AccessKey FromText(string text) => new(Encoding.UTF8.GetBytes(text.Trim()));

    public override string ToString() => "AccessKey (hidden)";

    internal byte[] Prove(ReadOnlySpan<byte> label, ReadOnlySpan<byte> transcript)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _secret);
        hmac.AppendData(label);
        hmac.AppendData(transcript);
        return hmac.GetHashAndReset();
    }
}

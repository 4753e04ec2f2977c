using System.Numerics;
using FileShare.Protocol;

namespace FileShare.Client;

public enum WireProtocol
{
    /// <summary>FileShare's own protocol, falling back to the original one when the server turns out to speak only that.</summary>
    Auto,
    FileShare,
    Seed,
}

public sealed class FileShareClientOptions
{
    public static FileShareClientOptions Default { get; } = new();

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait for any bytes from the server before the operation fails.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a server at its connection limit (Busy) is asked again, at growing intervals, before its answer
    /// stands: its connections free up as other downloads end. Zero takes the first Busy as final.
    /// </summary>
    public TimeSpan BusyRetryTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest wait for a digest: a server hashes a large file the first time it is asked, which takes a while.</summary>
    public TimeSpan HashTimeout { get; init; } = TimeSpan.FromMinutes(10);

    public WireProtocol Protocol { get; init; } = WireProtocol.Auto;

    /// <summary>Size of the pooled buffer each download receives into.</summary>
    public int ReceiveBufferSize { get; init; } = MaxReceiveBuffer;

    private const int MaxReceiveBuffer = ProtocolConstants.PieceSize;
    private const int MinReceiveBuffer = 128 * 1024;
    private const long ReceiveBufferBudget = 64L * 1024 * 1024;

    /// <summary>
    /// The receive buffer for each of this many downloads at once: one piece (4 MiB) while they fit 64 MiB between
    /// them, halved as more downloads run (down to 128 KiB), so 200 downloads do not hold 800 MiB of buffers. A read
    /// takes what has arrived, up to the buffer; a large buffer lets a read drain the socket whenever it has fallen
    /// behind, and BLAKE3 (multi-source downloads) hashes large spans faster (256 KiB 20% faster than 128 KiB).
    /// </summary>
    /// <remarks>A power of two, as the shared array pool hands out: any other size would be rounded up to the next one.</remarks>
    public static int ReceiveBufferFor(int concurrentDownloads)
    {
        long share = ReceiveBufferBudget / Math.Max(concurrentDownloads, 1);
        return (int)Math.Clamp((long)BitOperations.RoundUpToPowerOf2((ulong)share + 1) / 2, MinReceiveBuffer, MaxReceiveBuffer);
    }

    /// <summary>
    /// Caps the file bytes received per second by every download made with these options, together (null: no cap).
    /// Each connection gets its share, so a server that drops clients slower than its minimum data rate drops a
    /// connection whose share falls below that rate.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is below <see cref="TransferRateLimit.MinimumBytesPerSecond"/>.</exception>
    public long? MaxBytesPerSecond
    {
        get => RateLimit?.BytesPerSecond;
        init => RateLimit = value is { } cap ? new TransferRateLimit(cap) : null;
    }

    /// <summary>The one bucket all receives under these options draw on.</summary>
    internal TransferRateLimit? RateLimit { get; init; }

    /// <summary>Proves this key to the server and requires the server to prove it back.</summary>
    public AccessKey? AccessKey { get; init; }

    /// <summary>
    /// Requires TLS. Without <see cref="CertificateThumbprint"/> the server's certificate must chain to a root the
    /// system trusts and name the host that was dialled.
    /// </summary>
    public bool UseTls { get; init; }

    /// <summary>Requires TLS with exactly this certificate: its SHA-256 (64 hex digits) or SHA-1 (40) thumbprint.</summary>
    /// <exception cref="ArgumentException">The value is not 64 or 40 hex digits (':', '-' and spaces between them are ignored).</exception>
    public string? CertificateThumbprint
    {
        get => _certificateThumbprint;
        init => _certificateThumbprint = value is null ? null : CertificatePin.Normalize(value);
    }

    private readonly string? _certificateThumbprint;

    internal bool UsesTls => UseTls || CertificateThumbprint is not null;
    /// <summary>Most entries one listing may hold; a server that sends more is treated as hostile (ListingTooLarge).</summary>
    public int MaxListingEntries { get; init; } = 1_000_000;

    /// <summary>Most reply bytes one listing may take, so long names cannot stretch the entry cap into gigabytes.</summary>
    public long MaxListingBytes { get; init; } = 256L * 1024 * 1024;
}

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

    /// <summary>Size of each pooled buffer a download receives into (two while <see cref="OverlapWrites"/>).</summary>
    public int ReceiveBufferSize { get; init; } = MaxReceiveBuffer;

    /// <summary>Writes one buffer to disk while the next is received, at the cost of a second buffer.</summary>
    public bool OverlapWrites { get; init; } = true;

    private const int MaxReceiveBuffer = ProtocolConstants.PieceSize;
    private const int MinReceiveBuffer = 128 * 1024;
    private const long ReceiveBufferBudget = 64L * 1024 * 1024;

    /// <summary>
    /// The receive buffers for this many downloads at once. A download overlaps its disk writes with its receives while
    /// there are no more than two downloads per core; beyond that the other downloads keep the CPU and the disk busy,
    /// and one buffer twice the size is worth more: BLAKE3 hashes 256 KiB spans 20% faster than 128 KiB ones (3.2
    /// against 2.6 GB/s on one core here), and no write is handed to the thread pool. Buffers are one piece (4 MiB)
    /// each while they fit 64 MiB between them, halved as more downloads run (down to 128 KiB), so 200 downloads do not
    /// hold 800 MiB of buffers. A whole piece per read lets it be hashed in one call, and fewer, larger reads mean
    /// fewer thread hand-offs (1 GiB on loopback: 0.81-0.90 s at best against 1.02 s with 1 MiB).
    /// </summary>
    /// <remarks>A power of two, as the shared array pool hands out: any other size would be rounded up to the next one.</remarks>
    public static (int Size, bool Overlap) ReceiveBuffersFor(int concurrentDownloads) =>
        ReceiveBuffersFor(concurrentDownloads, Environment.ProcessorCount);

    internal static (int Size, bool Overlap) ReceiveBuffersFor(int concurrentDownloads, int processors)
    {
        concurrentDownloads = Math.Max(concurrentDownloads, 1);
        bool overlap = concurrentDownloads <= 2 * processors;
        long share = ReceiveBufferBudget / ((overlap ? 2L : 1L) * concurrentDownloads);
        int size = (int)Math.Clamp((long)BitOperations.RoundUpToPowerOf2((ulong)share + 1) / 2, MinReceiveBuffer, MaxReceiveBuffer);
        return (size, overlap);
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

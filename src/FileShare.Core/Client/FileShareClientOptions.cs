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

    /// <summary>Longest wait for a digest: a server hashes a large file the first time it is asked, which takes a while.</summary>
    public TimeSpan HashTimeout { get; init; } = TimeSpan.FromMinutes(10);

    public WireProtocol Protocol { get; init; } = WireProtocol.Auto;

    /// <summary>Size of the pooled buffer each download receives into.</summary>
    public int ReceiveBufferSize { get; init; } = 1024 * 1024;

    /// <summary>Most entries one listing may hold; a server that sends more is treated as hostile (ListingTooLarge).</summary>
    public int MaxListingEntries { get; init; } = 1_000_000;

    /// <summary>Most reply bytes one listing may take, so long names cannot stretch the entry cap into gigabytes.</summary>
    public long MaxListingBytes { get; init; } = 256L * 1024 * 1024;
}

namespace FileShare.Client;

/// <summary>One finished download; <see cref="Sha256"/> is the verified content hash when the server offers hashes.</summary>
public sealed record DownloadResult(string Path, long Length, TimeSpan Duration, string Endpoint, WireProtocol Protocol, string? Sha256 = null, bool Skipped = false)
{
    /// <summary>Bytes each source sent for this download (a source that was dropped may appear with what it sent before).</summary>
    public IReadOnlyList<SourceBytes> Sources { get; init; } = [];

    /// <summary>Bytes a resumed download found verified in its partial file and did not fetch again.</summary>
    public long BytesResumed { get; init; }
}

public readonly record struct SourceBytes(string Endpoint, long Bytes);

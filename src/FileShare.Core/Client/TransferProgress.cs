namespace FileShare.Client;

/// <summary>
/// Counters a download updates as it goes and anyone may read at any time: the caller polls them when it wants
/// to report, so progress costs the transfer one interlocked add per received buffer and nothing else.
/// </summary>
public sealed class TransferProgress
{
    private long _totalBytes = -1;
    private long _bytesReceived;

    /// <summary>Length of the file once the server has said it; -1 until then or when the protocol cannot tell.</summary>
    public long TotalBytes => Volatile.Read(ref _totalBytes);

    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    internal void SetTotal(long totalBytes) => Volatile.Write(ref _totalBytes, totalBytes);

    internal void Add(long count) => Interlocked.Add(ref _bytesReceived, count);
}

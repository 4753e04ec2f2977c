namespace FileShare.Client;

/// <summary>
/// Counters a download updates as it goes and anyone may read at any time: the caller polls them when it wants
/// to report, so progress costs the transfer one interlocked add per received buffer and nothing else. A download
/// from several servers keeps one child per source (<see cref="Sources"/>); a child's bytes count in its parent too.
/// </summary>
public sealed class TransferProgress
{
    private readonly TransferProgress? _parent;
    private readonly List<TransferProgress> _sources = [];
    private long _totalBytes = -1;
    private long _bytesReceived;
    private long _bytesResumed;
    private volatile bool _dropped;

    public TransferProgress()
    {
    }

    private TransferProgress(TransferProgress parent, string endpoint)
    {
        _parent = parent;
        Endpoint = endpoint;
    }

    /// <summary>host:port of the source, for a per-source child; null for a whole download.</summary>
    public string? Endpoint { get; }

    /// <summary>Length of the file once the server has said it; -1 until then or when the protocol cannot tell.</summary>
    public long TotalBytes => Volatile.Read(ref _totalBytes);

    /// <summary>Bytes in place so far, including those a resumed download found already verified.</summary>
    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    /// <summary>Bytes a resumed download did not have to fetch.</summary>
    public long BytesResumed => Volatile.Read(ref _bytesResumed);

    /// <summary>A source that failed, stalled or sent a bad piece and no longer serves this download.</summary>
    public bool Dropped => _dropped;

    /// <summary>A snapshot of the per-source children, in the order the sources joined.</summary>
    public IReadOnlyList<TransferProgress> Sources
    {
        get
        {
            lock (_sources)
            {
                return _sources.ToArray();
            }
        }
    }

    internal TransferProgress AddSource(string endpoint)
    {
        var source = new TransferProgress(this, endpoint);
        lock (_sources)
        {
            _sources.Add(source);
        }

        return source;
    }

    internal void MarkDropped() => _dropped = true;

    internal void SetTotal(long totalBytes) => Volatile.Write(ref _totalBytes, totalBytes);

    internal void AddResumed(long count)
    {
        Interlocked.Add(ref _bytesResumed, count);
        Interlocked.Add(ref _bytesReceived, count);
    }

    internal void Add(long count)
    {
        Interlocked.Add(ref _bytesReceived, count);
        _parent?.Add(count);
    }

    /// <summary>Takes back bytes that arrived but were not kept (a piece that failed its check).</summary>
    internal void Subtract(long count) => Add(-count);
}

namespace FileShare.Server;

/// <summary>Live counters of one server, updated from connection tasks and read from anywhere.</summary>
public sealed class ServerStatistics
{
    private long _activeConnections;
    private long _totalConnections;
    private long _requests;
    private long _bytesSent;

    public long ActiveConnections => Volatile.Read(ref _activeConnections);

    public long TotalConnections => Volatile.Read(ref _totalConnections);

    public long Requests => Volatile.Read(ref _requests);

    public long BytesSent => Volatile.Read(ref _bytesSent);

    internal void ConnectionOpened()
    {
        Interlocked.Increment(ref _activeConnections);
        Interlocked.Increment(ref _totalConnections);
    }

    internal void ConnectionClosed() => Interlocked.Decrement(ref _activeConnections);

    internal void RequestServed() => Interlocked.Increment(ref _requests);

    internal void AddBytesSent(long count) => Interlocked.Add(ref _bytesSent, count);
}

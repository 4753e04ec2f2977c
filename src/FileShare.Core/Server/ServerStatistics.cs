namespace FileShare.Server;

/// <summary>Live counters of one server, updated from connection tasks and read from anywhere.</summary>
public sealed class ServerStatistics
{
    private long _activeConnections;
    private long _totalConnections;
    private long _requests;
    private long _bytesSent;
    private long _slowConnectionsDropped;
    private long _handshakeTimeouts;
    private long _requestsOverLimit;
    private long _connectionFaults;
    private long _connectionsRefused;

    public long ActiveConnections => Volatile.Read(ref _activeConnections);

    public long TotalConnections => Volatile.Read(ref _totalConnections);

    public long Requests => Volatile.Read(ref _requests);

    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>Connections dropped for moving bytes slower than the minimum data rate, either way.</summary>
    public long SlowConnectionsDropped => Volatile.Read(ref _slowConnectionsDropped);

    /// <summary>Connections that did not complete the hello within the handshake timeout.</summary>
    public long HandshakeTimeouts => Volatile.Read(ref _handshakeTimeouts);

    /// <summary>Requests refused because they broke a size limit (a name longer than the maximum).</summary>
    public long RequestsOverLimit => Volatile.Read(ref _requestsOverLimit);

    /// <summary>Connections that ended on an error nothing expected: a bug, logged with outcome Failed; should stay 0.</summary>
    public long ConnectionFaults => Volatile.Read(ref _connectionFaults);

    /// <summary>Connections closed unanswered: as many were already being told the server is busy as it serves at once.</summary>
    public long ConnectionsRefused => Volatile.Read(ref _connectionsRefused);

    internal void ConnectionOpened()
    {
        Interlocked.Increment(ref _activeConnections);
        Interlocked.Increment(ref _totalConnections);
    }

    internal void ConnectionClosed() => Interlocked.Decrement(ref _activeConnections);

    internal void RequestServed() => Interlocked.Increment(ref _requests);

    internal void AddBytesSent(long count) => Interlocked.Add(ref _bytesSent, count);

    internal void SlowConnectionDropped() => Interlocked.Increment(ref _slowConnectionsDropped);

    internal void HandshakeTimedOut() => Interlocked.Increment(ref _handshakeTimeouts);

    internal void RequestOverLimit() => Interlocked.Increment(ref _requestsOverLimit);

    internal void ConnectionFaulted() => Interlocked.Increment(ref _connectionFaults);

    internal void ConnectionRefused() => Interlocked.Increment(ref _connectionsRefused);
}

using System.Collections.Concurrent;

namespace FileShare.Client;

/// <summary>
/// Keeps handshaken connections per server so many small downloads reuse them instead of paying a connect and a
/// handshake each. Also remembers which servers answered like the original program, and which answer piece maps.
/// </summary>
public sealed class ConnectionPool : IDisposable
{
    private readonly ConcurrentDictionary<string, ConcurrentBag<FileShareConnection>> _idle = new();
    private readonly ConcurrentDictionary<string, bool> _seedServers = new();
    private readonly ConcurrentDictionary<string, bool> _pieceServers = new();
    private readonly ConcurrentDictionary<string, FileShareException> _notReached = new();
    private volatile bool _disposed;

    public ConnectionPool(FileShareClientOptions? options = null) => Options = options ?? FileShareClientOptions.Default;

    public FileShareClientOptions Options { get; }

    /// <summary>A connection to host:port, and whether it came from the pool (it may have gone stale since).</summary>
    public async Task<(FileShareConnection Connection, bool Reused)> RentAsync(string host, int port, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string endpoint = Endpoint.Format(host, port);
        if (TakeIdle(endpoint) is { } idle)
        {
            return (idle, true);
        }

        // A server that could not be reached once is not tried again for every file left: a host gone down in the middle
        // of thousands of files would cost each of them a connection attempt, and a connect timeout where nothing answers.
        if (_notReached.TryGetValue(endpoint, out FileShareException? earlier))
        {
            throw new FileShareException(earlier.Kind, $"{earlier.Message.TrimEnd('.')}; not tried again in this command.", endpoint, inner: earlier) { NotReached = true };
        }

        // A server that turns this connection away as busy may be full of this pool's own connections (its limit per
        // address): each of those that comes back meanwhile is taken rather than waiting out the server's answer.
        FileShareConnection? freed = null;
        try
        {
            FileShareConnection connection = await FileShareConnection.ConnectAsync(host, port, Options, cancellationToken, () => freed = TakeIdle(endpoint)).ConfigureAwait(false);
            return (connection, ReferenceEquals(connection, freed));
        }
        catch (FileShareException e) when (e.NotReached)
        {
            _notReached.TryAdd(endpoint, e);
            throw;
        }
    }

    private FileShareConnection? TakeIdle(string endpoint) =>
        _idle.TryGetValue(endpoint, out ConcurrentBag<FileShareConnection>? bag) && bag.TryTake(out FileShareConnection? idle) ? idle : null;

    public void Return(FileShareConnection connection)
    {
        if (connection.IsHeldForRequestsAhead)
        {
            // Requests for a later download wait on it: that download takes it over (and closes it if it never runs).
            return;
        }

        if (_disposed || !connection.IsReusable)
        {
            connection.Dispose();
            return;
        }

        _idle.GetOrAdd(connection.Endpoint, static _ => []).Add(connection);
        if (_disposed && _idle.TryGetValue(connection.Endpoint, out var bag) && bag.TryTake(out var late))
        {
            late.Dispose();
        }
    }

    public bool IsSeedServer(string host, int port) => _seedServers.ContainsKey(Endpoint.Format(host, port));

    public void MarkSeedServer(string host, int port) => _seedServers[Endpoint.Format(host, port)] = true;

    /// <summary>Whether host:port has answered a hash request with piece maps, so a hash and a read may be sent together.</summary>
    public bool AnswersPieceMaps(string endpoint) => _pieceServers.ContainsKey(endpoint);

    public void MarkAnswersPieceMaps(string endpoint) => _pieceServers.TryAdd(endpoint, true);

    public void Dispose()
    {
        _disposed = true;
        foreach (ConcurrentBag<FileShareConnection> bag in _idle.Values)
        {
            while (bag.TryTake(out FileShareConnection? connection))
            {
                connection.Dispose();
            }
        }
    }
}

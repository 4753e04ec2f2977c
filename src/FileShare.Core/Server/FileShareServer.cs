using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// One folder shared read-only on one TCP port, through one listener per bind address (a single dual-stack one by
/// default). Each listener accepts asynchronously into the same connection handling, limits and statistics, and each
/// connection is served as a task on the thread pool; stopping unbinds every listener at once, lets requests in
/// flight finish within a timeout, then cuts the rest.
/// </summary>
public sealed class FileShareServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<long, ServerConnection> _connections = new();
    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();
    private readonly ConcurrentDictionary<string, bool> _unservableNames = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _cutGate = new();
    private long _cutDue = long.MaxValue;
    private Socket[] _listeners = [];
    private Task _acceptLoops = Task.CompletedTask;
    private long _nextConnectionId;
    private int _serving;
    private int _turnedAway;
    private int _stopRequested;

    public FileShareServer(FileShareServerOptions options)
    {
        Options = options;
        Root = SharePath.RealRoot(options.Root);
        if (options.Certificate is { } certificate)
        {
            // Built once: the context caches the chain, so each TLS handshake does not rebuild it.
            TlsOptions = new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(certificate, additionalCertificates: null) };
            ChannelBinding = MutualAuthentication.ChannelBinding(certificate);
        }

        Hashes = new FileHashCache(Root, lifetime: _aborting.Token);
        Share = new ShareLookup(this);
    }

    public FileShareServerOptions Options { get; }

    /// <summary>The shared folder as a full path with links resolved.</summary>
    public string Root { get; }

    public ServerStatistics Statistics { get; } = new();

    internal FileHashCache Hashes { get; }

    internal ShareLookup Share { get; }

    internal SslServerAuthenticationOptions? TlsOptions { get; }

    /// <summary>What the access-key proofs bind to under TLS: SHA-256 of the certificate this server presents.</summary>
    internal byte[] ChannelBinding { get; } = [];

    /// <summary>Where the server listens once started: one endpoint per bind address, all with the same port.</summary>
    public IReadOnlyList<IPEndPoint> LocalEndPoints { get; private set; } = [];

    public IPEndPoint? LocalEndPoint => LocalEndPoints.Count > 0 ? LocalEndPoints[0] : null;

    /// <summary>True when no bind address was given: one listener takes every interface, IPv6 and IPv4.</summary>
    public bool ListensOnEveryInterface => Options.BindAddresses.Count == 0;

    public int Port => LocalEndPoint?.Port ?? Options.Port;

    /// <summary>Called on a connection's thread once per request; must be quick and must not throw.</summary>
    public Action<RequestLogRecord>? RequestCompleted { get; set; }

    /// <summary>Completes when the server has stopped and every connection is closed.</summary>
    public Task Completion => _stopped.Task;

    /// <summary>
    /// Binds every address and starts accepting. An address that cannot be bound is a <see cref="FileShareException"/>
    /// (kind PortInUse, or BindFailed) naming its address:port, and leaves nothing bound.
    /// </summary>
    public void Start()
    {
        if (_listeners.Length > 0)
        {
            throw new InvalidOperationException("The server is already started.");
        }

        if (Volatile.Read(ref _stopRequested) == 1)
        {
            // Its accept loops and stop are spent: started again, it would hold the port with nothing to free it.
            throw new InvalidOperationException("A stopped server cannot be started again; make a new one.");
        }

        Socket[] listeners = ListenAll();
        try
        {
            // Only once the port is ours, so a port in use leaves no empty share folder behind.
            Folder.Create(Root);
        }
        catch
        {
            DisposeAll(listeners);
            throw;
        }

        _listeners = listeners;
        LocalEndPoints = Array.ConvertAll(listeners, listener => (IPEndPoint)listener.LocalEndPoint!);
        _acceptLoops = listeners.Length == 1 ? AcceptLoopAsync(listeners[0]) : Task.WhenAll(Array.ConvertAll(listeners, AcceptLoopAsync));
    }

    /// <summary>
    /// Stops accepting and frees the port at once, lets requests in flight finish for up to <paramref name="drainTimeout"/>,
    /// then closes whatever is left.
    /// </summary>
    public async Task StopAsync(TimeSpan drainTimeout)
    {
        if (Interlocked.Exchange(ref _stopRequested, 1) == 1)
        {
            // A later stop asking for a shorter drain (Stop-Job -Force during a patient Stop-Job) cuts sooner.
            CutAfter(drainTimeout);
            await Completion.ConfigureAwait(false);
            return;
        }

        try
        {
            // Everything before the first await runs synchronously: the port is free when this method returns its task.
            try
            {
                _stopping.Cancel();
            }
            finally
            {
                DisposeAll(_listeners);
            }

            CutAfter(drainTimeout);
            await _acceptLoops.ConfigureAwait(false);
            await Task.WhenAll(_connections.Values.Select(c => c.Completion)).ConfigureAwait(false);
        }
        finally
        {
            // A first hash nobody waits for any more stops reading (it holds a file and one of the process's hash slots).
            _aborting.Cancel();

            // Whatever failed, a later stop (or Stop-Job) must not wait for this one forever.
            _stopped.TrySetResult();
        }
    }

    /// <summary>Cuts the connections still running <paramref name="drainTimeout"/> from now, unless a stop asked for sooner.</summary>
    private void CutAfter(TimeSpan drainTimeout)
    {
        if (drainTimeout == Timeout.InfiniteTimeSpan)
        {
            return;
        }

        lock (_cutGate)
        {
            long due = Stopwatch.GetTimestamp() + (long)(Math.Max(0, drainTimeout.TotalSeconds) * Stopwatch.Frequency);
            if (due >= _cutDue)
            {
                return;
            }

            _cutDue = due;
            if (drainTimeout <= TimeSpan.Zero)
            {
                _aborting.Cancel();
            }
            else
            {
                _aborting.CancelAfter(drainTimeout);
            }
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync(TimeSpan.Zero));

    /// <summary>One listening socket per bind address, all on one port, or an exception and none.</summary>
    private Socket[] ListenAll()
    {
        IReadOnlyList<IPAddress?> addresses = ListensOnEveryInterface ? [null] : [.. Options.BindAddresses.Distinct()];
        var listeners = new List<Socket>(addresses.Count);
        int port = Options.Port;
        try
        {
            foreach (IPAddress? address in addresses)
            {
                listeners.Add(Listen(address, port, Options.Backlog));

                // With port 0 the system chose a port for the first address; the others take the same one.
                port = ((IPEndPoint)listeners[0].LocalEndPoint!).Port;
            }

            return [.. listeners];
        }
        catch (FileShareException e) when (e.Kind == FileShareErrorKind.PortInUse && Options.Port == 0 && listeners.Count > 0)
        {
            EndPoint chosen = listeners[0].LocalEndPoint!;
            DisposeAll(listeners);
            throw new FileShareException(FileShareErrorKind.PortInUse,
                $"Port {port}, which the system chose for {chosen}, is already in use on {e.Endpoint}; start again to get another port.",
                e.Endpoint, inner: e.InnerException);
        }
        catch
        {
            DisposeAll(listeners);
            throw;
        }
    }

    private static void DisposeAll(IEnumerable<Socket> sockets)
    {
        foreach (Socket socket in sockets)
        {
            socket.Dispose();
        }
    }

    private static Socket Listen(IPAddress? address, int port, int backlog)
    {
        bool dualStack = address is null && Socket.OSSupportsIPv6;
        IPAddress bindAddress = address ?? (dualStack ? IPAddress.IPv6Any : IPAddress.Any);
        var socket = new Socket(bindAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (dualStack)
            {
                socket.DualMode = true;
            }

            // No ReuseAddress: on Linux .NET maps it to SO_REUSEPORT too, which would let a second server share the port silently.
            socket.Bind(new IPEndPoint(bindAddress, port));

            // Linux checks some conflicts (a wildcard beside a specific address) only here, so it counts as binding.
            socket.Listen(backlog);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            var endpoint = new IPEndPoint(bindAddress, port);
            throw e.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? new FileShareException(FileShareErrorKind.PortInUse, $"Port {port} is already in use (could not bind {endpoint}).", endpoint.ToString(), inner: e)
                : new FileShareException(FileShareErrorKind.BindFailed, $"Could not bind {endpoint}: {e.Message}.", endpoint.ToString(), inner: e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        var backOff = TimeSpan.Zero;
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                backOff = TimeSpan.Zero;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || (e is SocketException && _stopping.IsCancellationRequested))
            {
                break;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                // A connection reset while still in the backlog; the listener itself is fine.
                continue;
            }
            catch (SocketException e)
            {
                // Out of file descriptors or buffers: asking again at once would only spin a core until some close.
                // nginx waits half a second; this waits 50 ms, doubling to a second while it lasts.
                if (backOff == TimeSpan.Zero)
                {
                    Report(new RequestLogRecord(DateTime.UtcNow, Port, "", RequestKind.Connection, "", 0, TimeSpan.Zero, $"AcceptFailed: {e.Message}"));
                }

                backOff = TimeSpan.FromMilliseconds(Math.Clamp(backOff.TotalMilliseconds * 2, 50, 1000));
                try
                {
                    await Task.Delay(backOff, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                continue;
            }

            Admit(client);
        }
    }

    /// <summary>
    /// Serves an accepted connection, or tells it the server is busy: past <see cref="FileShareServerOptions.MaxConnections"/>
    /// served at once, or past its address's share. Connections told "busy" take no serving slot (silent ones from one
    /// address must not lock out the others), and those waiting for their hello to be answered are bounded too.
    /// </summary>
    private void Admit(Socket client)
    {
        long id = Interlocked.Increment(ref _nextConnectionId);
        IPAddress? address = (client.RemoteEndPoint as IPEndPoint)?.Address;
        int fromAddress = address is null ? 0 : _perAddress.AddOrUpdate(address, 1, static (_, count) => count + 1);
        // The slot is taken in the same step as the count is checked: each bind address has its own accept loop.
        bool busy = fromAddress > Options.MaxConnectionsPerAddress || !TryTakeSlot(ref _serving, Options.MaxConnections);
        // Past as many again, a connection is told at once, without a task, a buffer or a wait for its hello.
        if (busy && (Volatile.Read(ref _turnedAway) >= Options.MaxConnections || fromAddress > 2 * Options.MaxConnectionsPerAddress))
        {
            TurnAwayAtOnce(client);
            Release(address);
            Statistics.ConnectionRefused();
            return;
        }

        if (busy)
        {
            Interlocked.Increment(ref _turnedAway);
        }

        var connection = new ServerConnection(this, client, busy, _stopping.Token, _aborting.Token);
        _connections[id] = connection;
        connection.Start(() =>
        {
            _connections.TryRemove(id, out _);
            Interlocked.Decrement(ref busy ? ref _turnedAway : ref _serving);
            Release(address);
        });
    }

    private static bool TryTakeSlot(ref int taken, int limit)
    {
        int seen = Volatile.Read(ref taken);
        while (seen < limit)
        {
            int before = Interlocked.CompareExchange(ref taken, seen + 1, seen);
            if (before == seen)
            {
                return true;
            }

            seen = before;
        }

        return false;
    }

    /// <summary>
    /// Answers "busy" without waiting for the client's hello, and closes. What the client already sent is read first:
    /// closing with it unread would reset the connection, and the client could lose the answer.
    /// </summary>
    private static void TurnAwayAtOnce(Socket client)
    {
        try
        {
            // Neither call waits: the bytes read are already here, and 12 bytes fit any new socket's send buffer.
            Span<byte> unread = stackalloc byte[ProtocolConstants.HelloLength];
            while (client.Available > 0 && client.Receive(unread) > 0)
            {
            }

            Span<byte> busy = stackalloc byte[ProtocolConstants.HelloLength];
            Messages.WriteServerHello(busy, ProtocolConstants.MaxVersion, StatusCode.Busy, 0);
            client.Send(busy);
            client.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // Gone already.
        }
        finally
        {
            client.Dispose();
        }
    }

    private void Release(IPAddress? address)
    {
        if (address is not null)
        {
            ReleaseAddress(address);
        }
    }

    private void ReleaseAddress(IPAddress address)
    {
        while (_perAddress.TryGetValue(address, out int count))
        {
            bool updated = count <= 1
                ? _perAddress.TryRemove(KeyValuePair.Create(address, count))
                : _perAddress.TryUpdate(address, count - 1, count);
            if (updated)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Tells the operator, once per name while the server runs, that a file or folder is left out of listings: a
    /// client that wonders why it is missing has no other way to learn. Bounded, as a share may hold any number of them.
    /// </summary>
    internal void ReportUnservableName(string name)
    {
        const int MaxNamesRemembered = 10_000;
        if (_unservableNames.Count < MaxNamesRemembered && _unservableNames.TryAdd(name, true))
        {
            Report(new RequestLogRecord(DateTime.UtcNow, Port, "", RequestKind.Notice, SharePath.Printable(name), 0, TimeSpan.Zero,
                "NotListed: its name has a backslash, a control character or bytes that are not UTF-8, which no request can carry; rename it to share it."));
        }
    }

    internal void Report(RequestLogRecord record)
    {
        // Handshake and connection records (busy, timed out, refused key) are logged, but they are not requests.
        if (record.Request is not (RequestKind.Handshake or RequestKind.Connection or RequestKind.Notice))
        {
            Statistics.RequestServed();
        }

        try
        {
            RequestCompleted?.Invoke(record);
        }
        catch
        {
            // A faulty log sink must not take a connection down with it.
        }
    }
}

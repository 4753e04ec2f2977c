using System.Net.Sockets;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// One client connection that has completed the FileShare handshake. Requests run one at a time; after an error
/// that leaves the stream in an unknown state <see cref="IsReusable"/> turns false and the connection should be disposed.
/// </summary>
public sealed class FileShareConnection : IDisposable
{
    private readonly Stream _stream;
    private readonly FrameChannel _channel;
    private readonly FileShareClientOptions _options;
    private readonly RangeReceiver _receiver;
    private readonly bool _namesPieceAlgorithm;
    private readonly ListOptions _hashOptionsForSoleSource;

    // Digest-and-read pairs sent before their download began, answered in this order.
    private readonly Queue<(string Path, uint HashId, uint ReadId)> _ahead = new();
    private uint _nextRequestId;
    private bool _broken;
    private long _pendingRange;

    private FileShareConnection(Stream stream, string endpoint, FileShareClientOptions options, HandshakeFeatures granted)
    {
        _stream = stream;
        _channel = new FrameChannel(stream, readAhead: true, receiveBuffer: 16 * 1024);
        _options = options;
        _namesPieceAlgorithm = granted.HasFlag(HandshakeFeatures.PieceAlgorithms);
        _hashOptionsForSoleSource = ListOptions.WithPieceMaps | (granted.HasFlag(HandshakeFeatures.FastPieceHashes) ? ListOptions.FastPieceHashes : ListOptions.None);
        Endpoint = endpoint;
        _receiver = new RangeReceiver(endpoint, options, (stream as NetworkStream)?.Socket);
    }

    /// <summary>host:port as the caller named it.</summary>
    public string Endpoint { get; }

    public bool IsReusable => !_broken && _pendingRange == 0 && _ahead.Count == 0;

    /// <summary>Whether the answers to requests sent ahead can still be read: not after a failure mid-read.</summary>
    public bool CanReadAnswersAhead => !_broken && _pendingRange == 0;

    /// <summary>In step, with requests sent ahead for a later download: that download owns it, not the pool.</summary>
    internal bool IsHeldForRequestsAhead => !_broken && _pendingRange == 0 && _ahead.Count > 0;

    /// <summary>
    /// Connects and shakes hands. A server that answers like the original program raises a FileShareException of
    /// kind <see cref="FileShareErrorKind.NotSupportedBySeedServer"/>.
    /// </summary>
    /// <param name="whileBusy">
    /// Asked each time the server says it is busy: a connection to the same server that came free meanwhile (the
    /// caller's own, holding one of the server's slots), taken instead of asking again.
    /// </param>
    public static async Task<FileShareConnection> ConnectAsync(string host, int port, FileShareClientOptions options, CancellationToken cancellationToken, Func<FileShareConnection?>? whileBusy = null)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                Socket socket = await Client.Endpoint.ConnectAsync(host, port, options, cancellationToken).ConfigureAwait(false);
                string endpoint = Client.Endpoint.Format(host, port);
                (Stream stream, HandshakeFeatures granted) = await new ClientHandshake(host, endpoint, options).OpenAsync(socket, cancellationToken).ConfigureAwait(false);
                return new FileShareConnection(stream, endpoint, options, granted);
            }
            catch (FileShareException e) when (e.Kind == FileShareErrorKind.Busy)
            {
                if (whileBusy?.Invoke() is { } freed)
                {
                    return freed;
                }

                TimeSpan waited = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                TimeSpan left = options.BusyRetryTime - waited;
                if (left <= TimeSpan.Zero)
                {
                    throw attempt == 1 ? e : new FileShareException(FileShareErrorKind.Busy,
                        $"{e.Message} It was still busy after {attempt} attempts over {waited.TotalSeconds:0.#} s.", e.Endpoint, e.RemotePath, e);
                }

                // 50 ms doubling to 2 s, each shortened at random so clients turned away together come back apart; the
                // last attempt comes when the time is up.
                TimeSpan pause = TimeSpan.FromMilliseconds(Math.Min(50 << Math.Min(attempt - 1, 6), 2000) * (0.5 + (Random.Shared.NextDouble() / 2)));
                await Task.Delay(pause < left ? pause : left, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public Task<IReadOnlyList<RemoteEntry>> ListAsync(string folder, bool recursive, CancellationToken cancellationToken) =>
        ListAsync(folder, recursive ? ListOptions.Recursive : ListOptions.None, cancellationToken);

    public async Task<IReadOnlyList<RemoteEntry>> ListAsync(string folder, ListOptions options, CancellationToken cancellationToken)
    {
        using CancellationTokenSource deadline = BeginRequest(cancellationToken);
        var entries = new List<RemoteEntry>();
        try
        {
            uint id = ++_nextRequestId;
            SpanWriter writer = _channel.BeginFrame(1 + SpanWriter.StringSize(folder));
            Messages.WriteListRequest(ref writer, folder, options);
            await _channel.SendFrameAsync(FrameType.ListRequest, id, writer.Position, deadline.Token).ConfigureAwait(false);
            bool last;
            long replyBytes = 0;
            do
            {
                // With hashes the server may first hash large files; that is work, not silence.
                Frame frame = await ReadReplyAsync(FrameType.ListReply, id, folder, deadline, options.HasFlag(ListOptions.WithHashes) ? _options.HashTimeout : null).ConfigureAwait(false);
                last = Messages.ReadListReply(frame.Body.Span, entries, out StatusCode status, out string? message);
                ConnectionErrors.ThrowIfFailed(status, message, Endpoint, folder);
                replyBytes += frame.Body.Length;
                if (entries.Count > _options.MaxListingEntries || replyBytes > _options.MaxListingBytes)
                {
                    throw new FileShareException(FileShareErrorKind.ListingTooLarge,
                        $"{Endpoint} sent a listing of '{folder}' larger than this client accepts ({_options.MaxListingEntries:N0} entries or {_options.MaxListingBytes:N0} bytes); stopped reading it.", Endpoint, folder);
                }
            }
            while (!last);
        }
        catch (Exception e) when (Translate(e, cancellationToken, folder) is { } translated)
        {
            throw translated;
        }

        // A server of an earlier version may list names with control or bidirectional characters, which this one leaves
        // out of its own listings: they are left out here too, rather than failing the whole listing.
        entries.RemoveAll(entry => SharePath.HasUnprintable(entry.Name));
        foreach (RemoteEntry entry in entries)
        {
            if (!SharePath.TrySplit(entry.Name, out _, out string? reason))
            {
                _broken = true;
                throw new FileShareException(FileShareErrorKind.ProtocolError, $"{Endpoint} listed a file named '{entry.Name}', which is refused: {reason}.", Endpoint, entry.Name);
            }
        }

        return entries;
    }

    public Task<RemoteEntry> StatAsync(string path, CancellationToken cancellationToken) =>
        PathRequestAsync(FrameType.StatRequest, FrameType.StatReply, path, _options.ReadTimeout, Messages.ReadStatReply, cancellationToken);

    /// <summary>
    /// Stat that also asks which pieces the server holds (<see cref="RemoteEntry.Pieces"/> is null for a whole file)
    /// and finds partial copies. A server that predates piece maps answers <see cref="FileShareErrorKind.BadRequest"/>.
    /// </summary>
    public Task<RemoteEntry> StatWithPiecesAsync(string path, CancellationToken cancellationToken) =>
        PathRequestAsync(FrameType.StatRequest, FrameType.StatReply, path, _options.ReadTimeout,
            static (ReadOnlySpan<byte> body, out StatusCode status, out string? message) => Messages.ReadStatReply(body, withPieces: true, out status, out message),
            cancellationToken, ListOptions.WithPieceMaps);

    /// <summary>The server's digest of a file: whole-file SHA-256 and per-piece hashes of its current version.</summary>
    /// <remarks>Hashing a large file for the first time takes the server a while; that is work, not a dead server.</remarks>
    public Task<FileDigest> HashAsync(string path, CancellationToken cancellationToken) =>
        PathRequestAsync(FrameType.HashRequest, FrameType.HashReply, path, _options.HashTimeout,
            (ReadOnlySpan<byte> body, out StatusCode status, out string? message) => Messages.ReadHashReply(body, withPieces: false, _namesPieceAlgorithm, out _, out status, out message),
            cancellationToken);

    /// <summary>
    /// The digest, and for a partial copy the pieces the server holds (null: the whole file). A server that predates
    /// piece maps answers <see cref="FileShareErrorKind.BadRequest"/>; ask with <see cref="HashAsync"/> then.
    /// </summary>
    /// <param name="soleSource">
    /// Every byte of the file will come from this server, so its pieces may be described with XXH3-128, which checks
    /// for damage at a fifth of BLAKE3's CPU but could be forged; with several sources the pieces must be BLAKE3.
    /// </param>
    public async Task<(FileDigest Digest, PieceMap? Held)> HashWithPiecesAsync(string path, bool soleSource, CancellationToken cancellationToken)
    {
        PieceMap? held = null;
        FileDigest digest = await PathRequestAsync(FrameType.HashRequest, FrameType.HashReply, path, _options.HashTimeout,
            (ReadOnlySpan<byte> body, out StatusCode status, out string? message) => Messages.ReadHashReply(body, withPieces: true, _namesPieceAlgorithm, out held, out status, out message),
            cancellationToken, soleSource ? _hashOptionsForSoleSource : ListOptions.WithPieceMaps).ConfigureAwait(false);
        return (digest, held);
    }

    private delegate T? ReplyReader<T>(ReadOnlySpan<byte> body, out StatusCode status, out string? message);

    /// <summary>A request whose body is one path, answered by one reply frame.</summary>
    private async Task<T> PathRequestAsync<T>(FrameType request, FrameType reply, string path, TimeSpan timeout, ReplyReader<T> read, CancellationToken cancellationToken, ListOptions options = ListOptions.None)
        where T : class
    {
        using CancellationTokenSource deadline = BeginRequest(cancellationToken);
        try
        {
            uint id = ++_nextRequestId;
            SpanWriter writer = _channel.BeginFrame(SpanWriter.StringSize(path) + 1);
            Messages.WritePathRequest(ref writer, path, options);
            await _channel.SendFrameAsync(request, id, writer.Position, deadline.Token).ConfigureAwait(false);
            Frame frame = await ReadReplyAsync(reply, id, path, deadline, timeout).ConfigureAwait(false);
            T? result = read(frame.Body.Span, out StatusCode status, out string? message);
            ConnectionErrors.ThrowIfFailed(status, message, Endpoint, path);
            return result!;
        }
        catch (Exception e) when (Translate(e, cancellationToken, path) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// Asks for a range (length -1: to the end) and returns the server's promise. The caller must then take exactly
    /// <see cref="RangeReply.DataLength"/> bytes with <see cref="ReceiveRangeAsync"/> before the next request.
    /// </summary>
    public async Task<RangeReply> RequestRangeAsync(string path, long offset, long length, CancellationToken cancellationToken)
    {
        using CancellationTokenSource deadline = BeginRequest(cancellationToken);
        try
        {
            uint id = await SendReadRequestAsync(path, offset, length, deadline.Token).ConfigureAwait(false);
            return await ReadRangeReplyAsync(id, path, length, deadline).ConfigureAwait(false);
        }
        catch (Exception e) when (Translate(e, cancellationToken, path) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// The digest (with the pieces the server holds) and a read of the whole file, sent back to back before either
    /// answer: the server answers in order, so one round trip serves both. The server is the sole source, so the digest
    /// may describe its pieces with XXH3-128. On success the whole file is pending, as
    /// after <see cref="RequestRangeAsync"/>; the caller checks the promise against the digest before taking it.
    /// A refused hash fails the call with the hash's answer (a server that predates piece maps: BadRequest).
    /// </summary>
    /// <remarks>When <see cref="SendHashAndReadAheadAsync"/> already sent them for <paramref name="path"/>, only the answers are read.</remarks>
    public async Task<(FileDigest Digest, PieceMap? Held, RangeReply Range)> HashAndReadAsync(string path, CancellationToken cancellationToken)
    {
        using CancellationTokenSource deadline = BeginRequest(cancellationToken, answeringAhead: true);
        // Outside the translation below: asking for another path than was sent ahead is the caller's mistake, not the connection's.
        (uint HashId, uint ReadId)? sentAhead = _ahead.Count > 0 ? TakeAhead(path) : null;
        try
        {
            (uint hashId, uint readId) = sentAhead ?? await SendHashAndReadAsync(path, deadline.Token).ConfigureAwait(false);
            Frame frame = await ReadReplyAsync(FrameType.HashReply, hashId, path, deadline, _options.HashTimeout).ConfigureAwait(false);
            FileDigest? digest = Messages.ReadHashReply(frame.Body.Span, withPieces: true, _namesPieceAlgorithm, out PieceMap? held, out StatusCode status, out string? message);
            if (status != StatusCode.Ok)
            {
                // Take the read's answer too: a refusal keeps the connection in step, a promise leaves bytes pending (not reusable).
                try
                {
                    await ReadRangeReplyAsync(readId, path, -1, deadline).ConfigureAwait(false);
                }
                catch (FileShareException)
                {
                }

                ConnectionErrors.ThrowIfFailed(status, message, Endpoint, path);
            }

            RangeReply range = await ReadRangeReplyAsync(readId, path, -1, deadline).ConfigureAwait(false);
            return (digest!, held, range);
        }
        catch (Exception e) when (Translate(e, cancellationToken, path) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>
    /// Sends the requests of <see cref="HashAndReadAsync"/> for <paramref name="path"/> now, even while the bytes of
    /// the current read are still to be taken; a later <see cref="HashAndReadAsync"/> for that path reads the answers.
    /// Until then the connection is no use to anything else.
    /// </summary>
    public async Task SendHashAndReadAheadAsync(string path, CancellationToken cancellationToken)
    {
        if (_broken)
        {
            throw new InvalidOperationException($"The connection to {Endpoint} is in an unknown state and cannot take another request.");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.ReadTimeout);
        try
        {
            (uint hashId, uint readId) = await SendHashAndReadAsync(path, deadline.Token).ConfigureAwait(false);
            _ahead.Enqueue((path, hashId, readId));
        }
        catch (Exception e) when (Translate(e, cancellationToken, path) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>Both requests in one write, so the server takes them in one receive.</summary>
    private async ValueTask<(uint HashId, uint ReadId)> SendHashAndReadAsync(string path, CancellationToken cancellationToken)
    {
        uint hashId = ++_nextRequestId;
        SpanWriter writer = _channel.BeginFrame(SpanWriter.StringSize(path) + 1);
        Messages.WritePathRequest(ref writer, path, _hashOptionsForSoleSource);
        _channel.HoldFrame(FrameType.HashRequest, hashId, writer.Position);
        uint readId = await SendReadRequestAsync(path, 0, -1, cancellationToken).ConfigureAwait(false);
        return (hashId, readId);
    }

    private (uint HashId, uint ReadId) TakeAhead(string path)
    {
        (string aheadPath, uint hashId, uint readId) = _ahead.Peek();
        if (aheadPath != path)
        {
            throw new InvalidOperationException($"The connection to {Endpoint} holds answers for '{aheadPath}', not '{path}'.");
        }

        _ahead.Dequeue();
        return (hashId, readId);
    }

    private async ValueTask<uint> SendReadRequestAsync(string path, long offset, long length, CancellationToken cancellationToken)
    {
        uint id = ++_nextRequestId;
        SpanWriter writer = _channel.BeginFrame(SpanWriter.StringSize(path) + 16);
        Messages.WriteReadRequest(ref writer, path, offset, length);
        await _channel.SendFrameAsync(FrameType.ReadRequest, id, writer.Position, cancellationToken).ConfigureAwait(false);
        return id;
    }

    /// <summary>Reads a read reply; a promise of more bytes than were asked for is refused before anything is sized for it.</summary>
    private async Task<RangeReply> ReadRangeReplyAsync(uint id, string path, long asked, CancellationTokenSource deadline)
    {
        Frame frame = await ReadReplyAsync(FrameType.ReadReply, id, path, deadline).ConfigureAwait(false);
        RangeReply? reply = Messages.ReadReadReply(frame.Body.Span, out StatusCode status, out string? message);
        ConnectionErrors.ThrowIfFailed(status, message, Endpoint, path);
        if (asked >= 0 && reply!.Value.DataLength > asked)
        {
            throw new ProtocolException($"it promised {reply.Value.DataLength:N0} bytes of '{path}' when {asked:N0} were asked for");
        }

        _pendingRange = reply!.Value.DataLength;
        return reply.Value;
    }

    /// <summary>Receives the bytes promised by the last <see cref="RequestRangeAsync"/> and writes them to <paramref name="target"/> at <paramref name="targetOffset"/>.</summary>
    public Task ReceiveRangeAsync(string path, SafeFileHandle target, long targetOffset, TransferProgress? progress, CancellationToken cancellationToken) =>
        ReceiveRangeAsync(path, target, targetOffset, progress, verifier: null, cancellationToken);

    /// <summary>As above, feeding every byte, in order, to <paramref name="verifier"/> as it is written.</summary>
    public async Task ReceiveRangeAsync(string path, SafeFileHandle target, long targetOffset, TransferProgress? progress, PieceVerifier? verifier, CancellationToken cancellationToken)
    {
        long count = _pendingRange;
        _pendingRange = 0;
        using CancellationTokenSource deadline = BeginRequest(cancellationToken, answeringAhead: true);
        try
        {
            await _receiver.ReceiveAsync(_channel, path, count, target, targetOffset, progress, verifier, deadline).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            _broken = true;
            throw new FileShareException(FileShareErrorKind.IncompleteTransfer,
                $"The connection to {Endpoint} broke in the middle of '{path}': {e.Message}", Endpoint, path, e);
        }
        catch (Exception e) when (Translate(e, cancellationToken, path) is { } translated)
        {
            throw translated;
        }
    }

    public void Dispose()
    {
        _broken = true;
        _stream.Dispose();
        _channel.Dispose();
        _receiver.Dispose();
    }

    /// <param name="answeringAhead">Taking answers to requests already sent: requests sent ahead for a later download may wait behind them.</param>
    private CancellationTokenSource BeginRequest(CancellationToken cancellationToken, bool answeringAhead = false)
    {
        if (_broken || _pendingRange != 0 || (!answeringAhead && _ahead.Count > 0))
        {
            throw new InvalidOperationException($"The connection to {Endpoint} is in an unknown state and cannot take another request.");
        }

        var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.ReadTimeout);
        return deadline;
    }

    private async Task<Frame> ReadReplyAsync(FrameType expected, uint requestId, string path, CancellationTokenSource deadline, TimeSpan? timeout = null)
    {
        deadline.CancelAfter(timeout ?? _options.ReadTimeout);
        Frame? frame = await _channel.ReadFrameAsync(deadline.Token).ConfigureAwait(false);
        if (frame is null)
        {
            throw new FileShareException(FileShareErrorKind.ConnectionFailed, $"{Endpoint} closed the connection before answering the request for '{path}'.", Endpoint, path);
        }

        if ((frame.Value.Type != expected && frame.Value.Type != FrameType.ErrorReply) || frame.Value.RequestId != requestId)
        {
            throw new ProtocolException($"expected reply {expected} to request {requestId}, got {frame.Value.Type} to {frame.Value.RequestId}");
        }

        return frame.Value;
    }

    /// <summary>Translates a failure; any but a refusal the server sent leaves the connection in an unknown state.</summary>
    private FileShareException? Translate(Exception e, CancellationToken cancellationToken, string path)
    {
        _broken |= !ConnectionErrors.LeavesStreamInStep(e);
        return ConnectionErrors.Translate(e, cancellationToken, Endpoint, _options.ReadTimeout, path);
    }
}

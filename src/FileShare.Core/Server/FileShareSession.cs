using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Server;

/// <summary>
/// The FileShare requests of one connection once its handshake is done (list, stat, hash, read), served one after
/// another until the client closes, goes idle too long, or the server stops. A stopping server starts nothing new, but a
/// client part-way through a file (a rate-capped download asks for it in parts, a multi-source one in runs of pieces)
/// is served the rest of that file, within the drain timeout: a download in flight is meant to finish.
/// </summary>
/// <param name="peer">The connection's socket, under TLS too: watched for the client leaving while an answer takes long.</param>
internal sealed class FileShareSession(FileShareServer server, HandshakeFeatures granted, ShareLookup share, ConnectionLog log, Socket peer, CancellationToken stopping, CancellationToken aborting)
{
    // A body this small costs less copied into its reply's write than handed to sendfile in a call of its own.
    private const int InlineBodyLimit = 16 * 1024;

    private readonly bool _namesPieceAlgorithm = granted.HasFlag(HandshakeFeatures.PieceAlgorithms);
    private readonly bool _knowsFastPieces = granted.HasFlag(HandshakeFeatures.FastPieceHashes);

    // The file a hash request opened, kept for the read of the same path the client already sent behind it.
    private (string Path, ServedFile File)? _keptOpen;

    // The file whose last read left more of it unsent, which the client may still ask for while the server stops.
    private volatile string? _fileUnderway;

    // The connection's sender, for file ranges and, under the same stall timeout, for replies.
    private RangeSender _sender = null!;

    // Ends the wait for the next request: after the idle timeout, or at once when the server stops.
    private CancellationTokenSource _idle = null!;

    private FileShareServerOptions Options => server.Options;

    /// <summary>BLAKE3 for clients that know it (a third of SHA-256's CPU per byte on both ends); SHA-256 for older ones.</summary>
    private PieceHashAlgorithm PieceAlgorithm => _namesPieceAlgorithm ? PieceHashAlgorithm.Blake3 : PieceHashAlgorithm.Sha256;

    /// <summary>XXH3-128 when the client says it will take every byte from this server; otherwise <see cref="PieceAlgorithm"/>.</summary>
    private PieceHashAlgorithm PieceAlgorithmFor(ListOptions options) =>
        _knowsFastPieces && options.HasFlag(ListOptions.FastPieceHashes) ? PieceHashAlgorithm.XxHash128 : PieceAlgorithm;

    /// <summary>Whether this connection's client can check pieces of <paramref name="algorithm"/> (a partial copy's record holds any).</summary>
    private bool CanName(PieceHashAlgorithm algorithm) => algorithm switch
    {
        PieceHashAlgorithm.Sha256 => true,
        PieceHashAlgorithm.Blake3 => _namesPieceAlgorithm,
        _ => _knowsFastPieces,
    };

    /// <summary>Serves frames until the client leaves; <paramref name="kernelSocket"/> is null under TLS, where file bytes must pass through the stream.</summary>
    public async Task ServeAsync(Stream stream, Socket? kernelSocket)
    {
        using var channel = new FrameChannel(stream, readAhead: true);
        using RangeSender sender = _sender = new(kernelSocket, stream, Options.SendTimeout, Options.MinRate);
        _idle = new CancellationTokenSource();
        // Stopping ends the wait for a next request at once, unless the client is part-way through a file.
        CancellationTokenRegistration onStop = stopping.UnsafeRegister(static s => ((FileShareSession)s!).EndIdleWaitIfStopping(), this);
        try
        {
            while (!stopping.IsCancellationRequested || _fileUnderway is not null)
            {
                CancellationTokenSource idle = _idle;
                if (!idle.TryReset())
                {
                    // Cancelled by the idle timer after a request had begun, or by the stop while a read that leaves
                    // the file unfinished was starting (the rest is still served): a fresh one, which the stop can
                    // still reach, since it cancels whichever is current.
                    idle = new CancellationTokenSource();
                    Interlocked.Exchange(ref _idle, idle).Dispose();
                    EndIdleWaitIfStopping();
                }

                idle.CancelAfter(Options.IdleTimeout);
                Frame? frame;
                try
                {
                    frame = await channel.ReadFrameAsync(idle.Token, Options.MinRate).ConfigureAwait(false);
                }
                catch (DataRateException e)
                {
                    await DropSlowSenderAsync(channel, e).ConfigureAwait(false);
                    return;
                }

                if (frame is null)
                {
                    return;
                }

                // Idle means no request: a transfer that outlasts the timeout must not leave the connection expired.
                idle.CancelAfter(Timeout.InfiniteTimeSpan);
                if (stopping.IsCancellationRequested && !ContinuesFileUnderway(frame.Value))
                {
                    break;
                }

                // A request in flight finishes even while the server is stopping; only an abort cuts it.
                await HandleAsync(channel, frame.Value, kernelSocket).ConfigureAwait(false);
            }

            // Stopping with the next request unread: the reply held back to travel with its reply still goes out.
            await _sender.SendFramesAsync(channel, static (channel, token) => channel.FlushAsync(token), aborting).ConfigureAwait(false);
        }
        finally
        {
            onStop.Dispose();
            _idle.Dispose();
            _keptOpen?.File.Dispose();
        }
    }

    private void EndIdleWaitIfStopping()
    {
        if (stopping.IsCancellationRequested && _fileUnderway is null)
        {
            try
            {
                Volatile.Read(ref _idle).Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Replaced meanwhile; the loop checks the stop again on its replacement.
            }
        }
    }

    private bool ContinuesFileUnderway(Frame frame)
    {
        if (frame.Type != FrameType.ReadRequest)
        {
            return false;
        }

        try
        {
            return Messages.ReadReadRequest(frame.Body.Span).Path == _fileUnderway;
        }
        catch (ProtocolException)
        {
            return false;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask HandleAsync(FrameChannel channel, Frame frame, Socket? kernelSocket)
    {
        // Whatever the request, the file kept from the last one is closed by the end of it (a read of it takes it first).
        (string Path, ServedFile File)? kept = _keptOpen;
        _keptOpen = null;
        _fileUnderway = null;
        using ServedFile? keptFile = kept?.File;
        long started = Stopwatch.GetTimestamp();
        (FrameType replyType, RequestKind kind) = frame.Type switch
        {
            FrameType.ListRequest => (FrameType.ListReply, RequestKind.List),
            FrameType.StatRequest => (FrameType.StatReply, RequestKind.Stat),
            FrameType.ReadRequest => (FrameType.ReadReply, RequestKind.Read),
            FrameType.HashRequest => (FrameType.HashReply, RequestKind.Hash),
            _ => (FrameType.ErrorReply, RequestKind.Handshake),
        };

        string path = "";
        try
        {
            switch (frame.Type)
            {
                case FrameType.ListRequest:
                    (path, ListOptions options) = Messages.ReadListRequest(frame.Body.Span);
                    await ListAsync(channel, frame.RequestId, path, options, started).ConfigureAwait(false);
                    return;
                case FrameType.StatRequest:
                    (path, ListOptions statOptions) = Messages.ReadPathRequestWithOptions(frame.Body.Span);
                    await StatAsync(channel, frame.RequestId, path, statOptions.HasFlag(ListOptions.WithPieceMaps), started).ConfigureAwait(false);
                    return;
                case FrameType.HashRequest:
                    (path, ListOptions hashOptions) = Messages.ReadPathRequestWithOptions(frame.Body.Span);
                    await HashAsync(channel, frame.RequestId, path, hashOptions, started, kernelSocket).ConfigureAwait(false);
                    return;
                case FrameType.ReadRequest:
                    (path, long offset, long length) = Messages.ReadReadRequest(frame.Body.Span);
                    await ReadAsync(channel, frame.RequestId, path, offset, length, started, kept is { } open && open.Path == path ? open.File : null).ConfigureAwait(false);
                    return;
                default:
                    await RefuseAsync(channel, replyType, frame.RequestId, kind, path, StatusCode.BadRequest, $"Unknown request type 0x{(byte)frame.Type:X2}.", started).ConfigureAwait(false);
                    return;
            }
        }
        catch (ProtocolException e)
        {
            await RefuseAsync(channel, replyType, frame.RequestId, kind, path, StatusCode.BadRequest, e.Message, started).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or ClientLeftException)
        {
            // A reply the client did not take in time, or one it left before: the connection is cut, as for a file's bytes.
            log.WriteAbortedSend(kind, path, 0, started, e);
            throw new TransferAbortedException(e);
        }
    }

    private async Task ListAsync(FrameChannel channel, uint requestId, string folder, ListOptions options, long started)
    {
        if (!share.TryResolve(folder, out string fullPath, out StatusCode refusal, out string? reason) || !Directory.Exists(fullPath))
        {
            StatusCode status = refusal != StatusCode.Ok ? refusal : File.Exists(fullPath) ? StatusCode.NotAFile : StatusCode.NotFound;
            await RefuseAsync(channel, FrameType.ListReply, requestId, RequestKind.List, folder, status, reason ?? (status == StatusCode.NotAFile ? "not a folder" : "no such folder"), started).ConfigureAwait(false);
            return;
        }

        string prefix = folder.Length == 0 ? "" : folder.TrimEnd('/') + "/";
        var batch = new List<RemoteEntry>();
        int batchBytes = 0;
        long total = 0;
        bool withPieces = options.HasFlag(ListOptions.WithPieceMaps);
        foreach (RemoteEntry listed in ShareListing.Enumerate(server.Root, fullPath, prefix, options.HasFlag(ListOptions.Recursive), withPieces, server.ReportUnservableName))
        {
            // A partial copy's record already carries its hash.
            RemoteEntry? entry = options.HasFlag(ListOptions.WithHashes) && listed.Pieces is null ? await WithHashAsync(listed).ConfigureAwait(false) : listed;
            if (entry is null)
            {
                continue;
            }

            int size = Messages.EntrySize(entry, withPieces);
            if (batchBytes + size > ProtocolConstants.ListChunkTarget && batch.Count > 0)
            {
                total += await SendListBatchAsync(channel, requestId, batch, batchBytes, isLast: false, withPieces).ConfigureAwait(false);
                batch.Clear();
                batchBytes = 0;
            }

            batch.Add(entry);
            batchBytes += size;
        }

        total += await SendListBatchAsync(channel, requestId, batch, batchBytes, isLast: true, withPieces).ConfigureAwait(false);
        log.Write(RequestKind.List, folder, total, started, nameof(StatusCode.Ok));
    }

    /// <summary>
    /// The entry with its SHA-256; without one when it could not be hashed (it changed meanwhile, or cannot be read),
    /// so a listing never leaves out a file it found; null when the file is gone since it was listed.
    /// </summary>
    private async Task<RemoteEntry?> WithHashAsync(RemoteEntry entry)
    {
        if (!SharePath.TryResolve(server.Root, entry.Name, out string fullPath, out _))
        {
            return null;
        }

        try
        {
            FileDigest digest = await server.Hashes.GetAsync(fullPath, PieceAlgorithm, aborting).UnlessPeerLeavesAsync(peer).ConfigureAwait(false);
            return entry with { Length = digest.Length, LastWriteTimeUtc = digest.LastWriteTimeUtc, Sha256 = digest.Sha256 };
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return entry;
        }
    }

    /// <param name="kernelSocket">The plain socket, to see whether the client's next request is already waiting.</param>
    private async Task HashAsync(FrameChannel channel, uint requestId, string path, ListOptions options, long started, Socket? kernelSocket)
    {
        bool withPieces = options.HasFlag(ListOptions.WithPieceMaps);
        FileDigest digest;
        PieceMap? held = null;
        ServedFile? file = share.TryOpenForRead(path, out StatusCode status, out string? reason);
        try
        {
            if (file is null && status == StatusCode.NotFound && share.FindPartialCopy(path) is { } copy)
            {
                (digest, held) = (copy.Digest, copy.State.Held);
            }
            else if (file is null)
            {
                await RefuseAsync(channel, FrameType.HashReply, requestId, RequestKind.Hash, path, status, reason!, started).ConfigureAwait(false);
                return;
            }
            else
            {
                try
                {
                    // The version through the open handle: one stat of the path fewer than the cache asking itself.
                    digest = await server.Hashes.GetAsync(file.FullPath, file.Version, PieceAlgorithmFor(options), aborting)
                        .UnlessPeerLeavesAsync(peer).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    await RefuseAsync(channel, FrameType.HashReply, requestId, RequestKind.Hash, path, ShareLookup.Classify(e), e.Message, started).ConfigureAwait(false);
                    return;
                }
            }

            if (!CanName(digest.PieceAlgorithm) && digest.PieceCount > 0)
            {
                // Only a partial copy recorded by a newer client gets here: its pieces cannot be described to this one.
                await RefuseAsync(channel, FrameType.HashReply, requestId, RequestKind.Hash, path, StatusCode.PieceNotAvailable,
                    $"this partial copy's pieces are checked with {PieceHasher.NameOf(digest.PieceAlgorithm)}, which this client does not know", started).ConfigureAwait(false);
                return;
            }

            if (Messages.HashReplySize(digest, namesAlgorithm: _namesPieceAlgorithm) > ProtocolConstants.MaxFrameBody)
            {
                // Piece hashes of a file past ~128 GiB do not fit one frame; the whole-file hash still does.
                digest = digest with { PieceHashes = [] };
            }

            SpanWriter writer = channel.BeginFrame(Messages.HashReplySize(digest, withPieces, held, _namesPieceAlgorithm));
            Messages.WriteHashReply(ref writer, digest, withPieces, held, _namesPieceAlgorithm);
            FrameType? next = channel.NextFrameReadAhead;
            if (next == FrameType.ReadRequest)
            {
                // The client's read is already here, and its reply goes out at once (a list or a first hash might
                // take long, so only a read): this reply travels with it.
                channel.HoldFrame(FrameType.HashReply, requestId, writer.Position);
            }
            else
            {
                await SendFrameAsync(channel, FrameType.HashReply, requestId, writer.Position).ConfigureAwait(false);
            }

            log.Write(RequestKind.Hash, path, 0, started, nameof(StatusCode.Ok));
            if (file is not null && (next == FrameType.ReadRequest || kernelSocket?.Available > 0))
            {
                // A client that asks for the digest and the file together: its read need not resolve and open the path
                // again. Kept only while the next request is already here, so an idle connection holds no file open.
                _keptOpen = (path, file);
                file = null;
            }
        }
        finally
        {
            file?.Dispose();
        }
    }

    private async Task<int> SendListBatchAsync(FrameChannel channel, uint requestId, List<RemoteEntry> batch, int batchBytes, bool isLast, bool withPieces)
    {
        SpanWriter writer = channel.BeginFrame(Messages.ListReplyPrefix + batchBytes);
        Messages.WriteListReplyPrefix(ref writer, isLast, batch.Count, withPieces);
        foreach (RemoteEntry entry in batch)
        {
            Messages.WriteEntry(ref writer, entry, withPieces);
        }

        int length = writer.Position;
        await SendFrameAsync(channel, FrameType.ListReply, requestId, length).ConfigureAwait(false);
        return length;
    }

    private async Task StatAsync(FrameChannel channel, uint requestId, string path, bool withPieces, long started)
    {
        RemoteEntry entry;
        // Described through an open handle, so a folder swapped for a symlink cannot make it describe a file outside.
        using (ServedFile? file = share.TryOpenForRead(path, out StatusCode status, out string? reason))
        {
            if (file is not null)
            {
                entry = new RemoteEntry(path, file.Version.Length, file.Version.LastWriteUtc);
            }
            else if (withPieces && status == StatusCode.NotFound && share.FindPartialCopy(path) is { } copy)
            {
                entry = copy.Entry(path);
            }
            else
            {
                await RefuseAsync(channel, FrameType.StatReply, requestId, RequestKind.Stat, path, status, reason!, started).ConfigureAwait(false);
                return;
            }
        }

        SpanWriter writer = channel.BeginFrame(2 + Messages.EntrySize(entry, withPieces));
        Messages.WriteStatReply(ref writer, entry, withPieces);
        await SendFrameAsync(channel, FrameType.StatReply, requestId, writer.Position).ConfigureAwait(false);
        log.Write(RequestKind.Stat, path, 0, started, nameof(StatusCode.Ok));
    }

    /// <param name="kept">The file, already opened and checked by the hash request just before this read.</param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadAsync(FrameChannel channel, uint requestId, string path, long offset, long length, long started, ServedFile? kept)
    {
        StatusCode status = StatusCode.Ok;
        string? reason = null;
        ServedFile? opened = kept ?? share.TryOpenForRead(path, out status, out reason);
        PartialCopy? copy = opened is null && status == StatusCode.NotFound ? share.FindPartialCopy(path) : null;
        if (copy is not null)
        {
            opened = share.TryOpenConfined(copy.DataPath, out status, out reason);
            if (opened is null && status == StatusCode.NotFound)
            {
                // Its download finished and renamed it into place (or gave up) since the lookup: the whole file, if there now.
                copy = null;
                opened = share.TryOpenForRead(path, out status, out reason);
            }
        }

        using ServedFile? file = opened;
        if (file is null)
        {
            await RefuseAsync(channel, FrameType.ReadReply, requestId, RequestKind.Read, path, status, reason!, started).ConfigureAwait(false);
            return;
        }

        long fileLength = copy?.Digest.Length ?? file.Version.Length;
        if (offset < 0 || offset > fileLength || length < -1)
        {
            await RefuseAsync(channel, FrameType.ReadReply, requestId, RequestKind.Read, path, StatusCode.RangeNotSatisfiable, $"Range starting at {offset} does not fit a file of {fileLength} bytes.", started).ConfigureAwait(false);
            return;
        }

        long count = length == -1 ? fileLength - offset : Math.Min(length, fileLength - offset);
        if (copy is not null && !copy.State.Held.HoldsRange(offset, count, copy.Digest.PieceSize))
        {
            await RefuseAsync(channel, FrameType.ReadReply, requestId, RequestKind.Read, path, StatusCode.PieceNotAvailable,
                $"This server holds only {copy.State.Held.HeldCount} of {copy.State.Held.Count} pieces of the file; bytes {offset}-{offset + count - 1} are not all here.", started).ConfigureAwait(false);
            return;
        }

        _fileUnderway = offset + count < fileLength ? path : null;
        int inline = count <= InlineBodyLimit ? (int)count : 0;
        SpanWriter writer = channel.BeginFrame(32 + inline);
        DateTime lastWrite = copy?.Digest.LastWriteTimeUtc ?? file.Version.LastWriteUtc;
        Messages.WriteReadReply(ref writer, new RangeReply(count, fileLength, lastWrite));
        if (inline > 0)
        {
            // Read before anything is promised, so a file that shrank meanwhile is refused rather than cut short.
            string? failure;
            try
            {
                int read = ReadFully(file.Handle, channel.AfterBody(writer.Position, inline), offset);
                failure = read < inline ? $"The file became shorter while it was being read ({read} of {inline} bytes)." : null;
            }
            catch (IOException e)
            {
                failure = e.Message;
            }

            if (failure is not null)
            {
                await RefuseAsync(channel, FrameType.ReadReply, requestId, RequestKind.Read, path, StatusCode.ServerError, failure, started).ConfigureAwait(false);
                return;
            }

            await SendFrameAsync(channel, FrameType.ReadReply, requestId, writer.Position, trailing: inline).ConfigureAwait(false);
            server.Statistics.AddBytesSent(inline);
            log.Write(RequestKind.Read, path, inline, started, nameof(StatusCode.Ok));
            return;
        }

        await SendFrameAsync(channel, FrameType.ReadReply, requestId, writer.Position).ConfigureAwait(false);

        try
        {
            await _sender.SendAsync(file, offset, count, server.Statistics, aborting).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The reply promised bytes it cannot deliver; closing the connection is the only honest signal left.
            log.WriteAbortedSend(RequestKind.Read, path, _sender.Sent, started, e);
            throw new TransferAbortedException(e);
        }

        log.Write(RequestKind.Read, path, _sender.Sent, started, nameof(StatusCode.Ok));
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the file ends; a few KiB from the page cache, so synchronously.</summary>
    private static int ReadFully(SafeFileHandle file, Span<byte> buffer, long offset)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read = RandomAccess.Read(file, buffer[total..], offset + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    private async Task RefuseAsync(FrameChannel channel, FrameType replyType, uint requestId, RequestKind kind, string path, StatusCode status, string message, long started)
    {
        await SendFrameAsync(channel, replyType, requestId, channel.BeginError(status, message)).ConfigureAwait(false);
        log.Write(kind, path, 0, started, status.ToString());
    }

    /// <summary>Sends the frame begun on <paramref name="channel"/> (and any held back) within the send timeout.</summary>
    private ValueTask SendFrameAsync(FrameChannel channel, FrameType type, uint requestId, int bodyLength, int trailing = 0) =>
        _sender.SendFramesAsync((channel, type, requestId, bodyLength, trailing),
            static (frame, token) => frame.channel.SendFrameAsync(frame.type, frame.requestId, frame.bodyLength, token, frame.trailing), aborting);

    /// <summary>A sender that trickles a frame is told why (if it still reads) and dropped.</summary>
    private async Task DropSlowSenderAsync(FrameChannel channel, DataRateException e)
    {
        server.Statistics.SlowConnectionDropped();
        log.Write(RequestKind.Connection, "", 0, Stopwatch.GetTimestamp(), "TooSlow: " + e.Message);
        using var courtesy = CancellationTokenSource.CreateLinkedTokenSource(aborting);
        courtesy.CancelAfter(TimeSpan.FromSeconds(1));
        await channel.SendErrorAsync(FrameType.ErrorReply, 0, StatusCode.TooSlow, e.Message, courtesy.Token).ConfigureAwait(false);
    }
}

using System.Diagnostics;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// Fetches the missing pieces of one file from every source at once. Each source has one connection and takes
/// piece-aligned segments from a shared queue: with one source the whole missing run in one read (the fast path),
/// with several about a second of its measured rate, so faster sources take more. Every piece is checked against
/// the digest as it lands and only then counts. A source that fails, stalls past the read timeout or sends a bad
/// piece is dropped; its unfinished pieces go back to the queue for the others. A local write that fails (a full
/// disk) fails the whole download, since no source could do better; a piece counts only once its bytes are written.
/// </summary>
internal sealed class PieceDownload
{
    private const byte Missing = 0;
    private const byte InFlight = 1;
    private const byte Done = 2;
    private const int FirstSegmentPieces = 2;
    private const int MaxSegmentPieces = 16;
    private static readonly TimeSpan SegmentTarget = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StateSaveInterval = TimeSpan.FromMilliseconds(500);

    private readonly ConnectionPool _pool;
    private readonly string _remotePath;
    private readonly FileDigest _digest;
    private readonly SafeFileHandle _target;
    private readonly PieceMap _held;
    private readonly TransferProgress _progress;
    private readonly byte[] _state;
    private readonly object _gate = new();
    private TaskCompletionSource _changed = NewSignal();
    private int _liveWorkers;
    private (FileShareConnection Connection, RangeReply Reply)? _opened;

    // Pieces verified since the state record was last written.
    private volatile bool _dirty;

    /// <param name="opened">A connection to the first source on which the whole file has already been asked for, with the server's promise.</param>
    public PieceDownload(ConnectionPool pool, string remotePath, FileDigest digest, SafeFileHandle target, PieceMap held, TransferProgress progress, (FileShareConnection, RangeReply)? opened = null)
    {
        _opened = opened;
        _pool = pool;
        _remotePath = remotePath;
        _digest = digest;
        _target = target;
        _held = held;
        _progress = progress;
        _state = new byte[digest.PieceCount];
        for (int piece = 0; piece < _state.Length; piece++)
        {
            _state[piece] = held.Has(piece) ? Done : Missing;
        }
    }

    /// <summary>Why each dropped source was dropped, in the order it happened.</summary>
    public List<(DownloadSource Source, FileShareException Error)> Dropped { get; } = [];

    public IEnumerable<int> MissingPieces => Enumerable.Range(0, _state.Length).Where(p => !_held.Has(p));

    /// <summary>Runs until every piece is verified or no live source holds a missing one; cancellation throws.</summary>
    public async Task RunAsync(IReadOnlyList<SourceProbe> sources, CancellationToken cancellationToken)
    {
        _liveWorkers = sources.Count;
        try
        {
            if (sources.Count == 1)
            {
                // One source needs no second thread: running it here saves a hand-off per file.
                await WorkAsync(sources[0], takesOpened: true, cancellationToken).ConfigureAwait(false);
                return;
            }

            // The connection already opened is the first source's, so only its worker may take it.
            using var localFailure = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task[] workers = sources.Select((s, i) => Task.Run(async () =>
            {
                try
                {
                    await WorkAsync(s, takesOpened: i == 0, localFailure.Token).ConfigureAwait(false);
                }
                catch
                {
                    // Whatever ends one worker (only a local failure gets out) ends the download.
                    localFailure.Cancel();
                    throw;
                }
            }, cancellationToken)).ToArray();
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        finally
        {
            TakeOpened()?.Connection.Dispose();
        }
    }

    /// <summary>Writes <paramref name="state"/> to <paramref name="statePath"/> whenever pieces were verified since the last write, until cancelled.</summary>
    public async Task SaveStateWhileRunningAsync(PartialState state, string statePath, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            // Suppressed: the end of every download cancels the wait, and an exception each time costs more than the save.
            await Task.Delay(StateSaveInterval, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!cancellationToken.IsCancellationRequested && _dirty)
            {
                _dirty = false;
                state.TryWrite(statePath);
            }
        }
    }

    private (FileShareConnection Connection, RangeReply Reply)? TakeOpened()
    {
        lock (_gate)
        {
            (FileShareConnection, RangeReply)? opened = _opened;
            _opened = null;
            return opened;
        }
    }

    private async Task WorkAsync(SourceProbe probe, bool takesOpened, CancellationToken cancellationToken)
    {
        (DownloadSource source, PieceMap? pieces) = (probe.Source, probe.Pieces);
        // Copies of one content may differ in write time (a copy made without keeping it): each source is held to its own.
        DateTime lastWrite = probe.Digest?.LastWriteTimeUtc ?? _digest.LastWriteTimeUtc;
        TransferProgress counter = _progress.AddSource(source.Endpoint);
        FileShareConnection? connection = null;
        var clock = new Stopwatch();
        double bytesPerSecond = 0;
        (int First, int Count)? segment = null;
        try
        {
            while (true)
            {
                segment = Take(pieces, bytesPerSecond, out Task? changed);
                if (segment is null)
                {
                    if (changed is null)
                    {
                        return;
                    }

                    // Another source is fetching pieces this one holds too; if it fails they come back to the queue.
                    await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                RangeReply? asked = null;
                if (connection is null && takesOpened && TakeOpened() is { } opened)
                {
                    (connection, asked) = opened;
                    if (segment.Value != (0, _state.Length))
                    {
                        // Not the whole file after all: the read already asked for cannot be taken back.
                        connection.Dispose();
                        (connection, asked) = (null, null);
                    }
                }

                connection ??= (await _pool.RentAsync(source.Host, source.Port, cancellationToken).ConfigureAwait(false)).Connection;
                clock.Restart();
                long before = counter.BytesReceived;
                await FetchSegmentAsync(connection, segment.Value, asked, lastWrite, counter, cancellationToken).ConfigureAwait(false);
                Release(segment.Value);
                segment = null;
                bytesPerSecond = (counter.BytesReceived - before) / Math.Max(clock.Elapsed.TotalSeconds, 0.001);
            }
        }
        catch (FileShareException e) when (e.Kind != FileShareErrorKind.LocalWriteFailed)
        {
            counter.MarkDropped();
            lock (_gate)
            {
                Dropped.Add((source, e));
            }

            connection?.Dispose();
            connection = null;
        }
        finally
        {
            if (segment is { } unfinished)
            {
                Release(unfinished);
            }

            if (connection is not null)
            {
                _pool.Return(connection);
            }

            lock (_gate)
            {
                _liveWorkers--;
                Pulse();
            }
        }
    }

    /// <param name="asked">The promise for this segment when it was already asked for on <paramref name="connection"/>.</param>
    /// <param name="lastWrite">The source's write time for the file when it was probed; a reply with another means it changed.</param>
    private async Task FetchSegmentAsync(FileShareConnection connection, (int First, int Count) segment, RangeReply? asked, DateTime lastWrite, TransferProgress counter, CancellationToken cancellationToken)
    {
        long offset = (long)segment.First * _digest.PieceSize;
        long length = Math.Min(_digest.Length, (long)(segment.First + segment.Count) * _digest.PieceSize) - offset;
        long received = counter.BytesReceived;
        long verified = 0;
        using TransferRateLimit.RangeShare? share = _pool.Options.RateLimit?.Share();
        try
        {
            using var verifier = new PieceVerifier(_digest, _remotePath, connection.Endpoint, segment.First, piece =>
            {
                Interlocked.Add(ref verified, _digest.PieceLength(piece));
                MarkDone(piece);
            });
            for (long done = 0, part; done < length; done += part)
            {
                part = asked is null && share is { } capped ? Math.Min(capped.PartLength, length - done) : length;
                RangeReply reply = asked ?? await connection.RequestRangeAsync(_remotePath, offset + done, part, cancellationToken).ConfigureAwait(false);
                if (!reply.StillHolds(_digest.Length, lastWrite) || reply.DataLength != part)
                {
                    // Taking the promised bytes off the wire is pointless: the connection is dropped with the source.
                    throw FileDownloader.Changed(connection.Endpoint, _remotePath);
                }

                await connection.ReceiveRangeAsync(_remotePath, _target, offset + done, counter, verifier, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            // Bytes of pieces that never verified will be fetched again; the overall count must not run ahead.
            _progress.Subtract(counter.BytesReceived - received - Interlocked.Read(ref verified));
            throw;
        }
    }

    /// <summary>
    /// The next run of missing pieces this source holds, marked in flight. When there is none now but another source
    /// is fetching pieces this one holds, <paramref name="changed"/> completes when that may have changed; when it is
    /// null too, this source has nothing left to do.
    /// </summary>
    private (int First, int Count)? Take(PieceMap? pieces, double bytesPerSecond, out Task? changed)
    {
        lock (_gate)
        {
            changed = null;
            int limit = _liveWorkers <= 1 ? int.MaxValue
                : bytesPerSecond <= 0 ? FirstSegmentPieces
                : (int)Math.Clamp(bytesPerSecond * SegmentTarget.TotalSeconds / _digest.PieceSize, 1, MaxSegmentPieces);
            for (int first = 0; first < _state.Length; first++)
            {
                if (_state[first] != Missing || !(pieces?.Has(first) ?? true))
                {
                    continue;
                }

                int count = 0;
                while (first + count < _state.Length && count < limit && _state[first + count] == Missing && (pieces?.Has(first + count) ?? true))
                {
                    _state[first + count] = InFlight;
                    count++;
                }

                return (first, count);
            }

            changed = AnyInFlightHeldBy(pieces) ? _changed.Task : null;
            return null;
        }
    }

    private bool AnyInFlightHeldBy(PieceMap? pieces)
    {
        for (int piece = 0; piece < _state.Length; piece++)
        {
            if (_state[piece] == InFlight && (pieces?.Has(piece) ?? true))
            {
                return true;
            }
        }

        return false;
    }

    private void MarkDone(int piece)
    {
        lock (_gate)
        {
            _state[piece] = Done;
        }

        _held.Set(piece);
        _dirty = true;
    }

    /// <summary>Pieces of a finished or failed segment that did not verify go back to the queue.</summary>
    private void Release((int First, int Count) segment)
    {
        lock (_gate)
        {
            for (int piece = segment.First; piece < segment.First + segment.Count; piece++)
            {
                if (_state[piece] == InFlight)
                {
                    _state[piece] = Missing;
                }
            }

            Pulse();
        }
    }

    private void Pulse()
    {
        _changed.TrySetResult();
        _changed = NewSignal();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Server;

/// <summary>
/// Sends byte ranges of files to one connection, one range at a time. On a plain socket it hands each range to the
/// kernel (<see cref="Socket.SendPacketsAsync"/> with a file element is sendfile(2) on Linux, TransmitPackets on
/// Windows), so file bytes never pass through managed buffers; on any other stream it copies through one pooled buffer.
/// Ranges go out in chunks sized to take about a second at the client's pace, so the stall timeout and the minimum
/// data rate are checked often for a slow client and a fast one pays the per-chunk cost a few times per range.
/// Everything a range needs (deadline, rate clock, socket operation) is kept and reused for the next one.
/// </summary>
internal sealed class RangeSender : IDisposable
{
    // A fast client needs few chunks (a 1 GiB range about 20). A chunk is sized to about a second at the client's pace,
    // so a client that still takes data is cut by the stall timeout only if it slows down within one chunk by as many
    // times as the timeout has seconds (thirtyfold at the default 30 s).
    private const int MaxKernelChunk = 64 * 1024 * 1024;
    private const int CopyBuffer = 256 * 1024;

    private readonly Socket? _socket;
    private readonly Stream _stream;
    private readonly DataRate _minRate;
    private readonly ChunkPace _pace;
    private KernelSend? _kernel;
    private ServerStatistics? _statistics;

    /// <param name="socket">The connection's socket when <paramref name="stream"/> writes to it unchanged (no TLS); null otherwise.</param>
    /// <param name="kernelSends">Whether the kernel may send the file from the socket itself (sendfile); otherwise every byte is copied through a buffer.</param>
    public RangeSender(Socket? socket, Stream stream, TimeSpan stallTimeout, DataRate minRate = default, bool kernelSends = true)
    {
        _socket = kernelSends ? socket : null;
        _stream = stream;
        _minRate = minRate;
        _pace = new ChunkPace(stallTimeout, minRate, socket is not null && OperatingSystem.IsLinux() ? () => AcknowledgedByPeer(socket) : null);
    }

    /// <summary>Bytes of data the peer has acknowledged on this connection: tcp_info's tcpi_bytes_acked (Linux 4.1 and later).</summary>
    private static long AcknowledgedByPeer(Socket socket)
    {
        const int IpProtocolTcp = 6, TcpInfo = 11, BytesAckedOffset = 120;
        Span<byte> info = stackalloc byte[256];
        try
        {
            int length = socket.GetRawSocketOption(IpProtocolTcp, TcpInfo, info);
            return length >= BytesAckedOffset + sizeof(long) ? BinaryPrimitives.ReadInt64LittleEndian(info[BytesAckedOffset..]) : -1;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return -1;
        }
    }

    /// <summary>Bytes of the current (or last) range that the client has taken so far.</summary>
    public long Sent { get; private set; }

    /// <summary>Sends the range, counting each chunk the client takes into <see cref="Sent"/> and <paramref name="statistics"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ServedFile file, long offset, long count, ServerStatistics statistics, CancellationToken cancellationToken)
    {
        Sent = 0;
        _statistics = statistics;
        CancellationTokenRegistration caller = _pace.Start(cancellationToken);
        try
        {
            if (_socket is not null)
            {
                await SendWithKernelAsync(_socket, file.StreamForSendfile(), offset, count).ConfigureAwait(false);
            }
            else
            {
                await SendWithCopyAsync(file.Handle, offset, count).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (_pace.DeadlinePassed && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            throw _pace.RateExpired
                ? new DataRateException($"The client took the data slower than the minimum data rate of {_minRate.BytesPerSecond} bytes/s.")
                : new TimeoutException("The client took nothing of the file within the send timeout.");
        }
        finally
        {
            caller.Dispose();
            _pace.Stop();
        }
    }

    /// <summary>
    /// Runs one write of protocol frames (a reply, or replies held back) under the stall timeout a range is sent under:
    /// a client that asks and never reads would otherwise hold its slot. Not under the minimum data rate: a reply may
    /// wait behind the end of a range still in the socket buffers, which a client at its own pace takes in its time.
    /// </summary>
    /// <exception cref="TimeoutException">The client took nothing for the whole stall timeout.</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendFramesAsync<TState>(TState state, Func<TState, CancellationToken, ValueTask> write, CancellationToken cancellationToken)
    {
        CancellationTokenRegistration caller = _pace.Start(cancellationToken);
        try
        {
            _pace.BeginWithoutRate();
            ValueTask writing = write(state, _pace.Token);
            if (!writing.IsCompleted)
            {
                _pace.NoteAcknowledged();
            }

            await writing.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException("The client took nothing of a reply, or of what was sent before it, within the send timeout.");
        }
        finally
        {
            caller.Dispose();
            _pace.Stop();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendWithKernelAsync(Socket socket, FileStream file, long offset, long count)
    {
        using CancellationTokenRegistration abort = _pace.Token.UnsafeRegister(static s => ((Socket)s!).Dispose(), socket);
        _kernel ??= KernelSend.Rent();
        try
        {
            while (count > 0)
            {
                int chunk = (int)Math.Min(count, _pace.NextChunk(MaxKernelChunk));
                _pace.Begin(chunk);
                (SocketError error, long transferred) = await _kernel.SendAsync(socket, file, offset, chunk).ConfigureAwait(false);
                _pace.Token.ThrowIfCancellationRequested();
                if (error != SocketError.Success)
                {
                    throw new SocketException((int)error);
                }

                if (transferred != chunk)
                {
                    throw new IOException($"The file ended {chunk - transferred} bytes early while it was being sent.");
                }

                _pace.End(chunk);
                Taken(chunk);
                offset += chunk;
                count -= chunk;
            }
        }
        finally
        {
            _kernel.Forget();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendWithCopyAsync(SafeFileHandle file, long offset, long count)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            while (count > 0)
            {
                int wanted = (int)Math.Min(count, _pace.NextChunk(buffer.Length));
                // Outside Windows the runtime's ReadAsync runs this same blocking pread on a pool thread; run inline, it
                // costs no hand-off per chunk.
                int read = OperatingSystem.IsWindows()
                    ? await RandomAccess.ReadAsync(file, buffer.AsMemory(0, wanted), offset, _pace.Token).ConfigureAwait(false)
                    : RandomAccess.Read(file, buffer.AsSpan(0, wanted), offset);
                if (read == 0)
                {
                    throw new IOException($"The file ended {count} bytes early while it was being sent.");
                }

                _pace.Begin(read);
                await _stream.WriteAsync(buffer.AsMemory(0, read), _pace.Token).ConfigureAwait(false);
                _pace.End(read);
                Taken(read);
                offset += read;
                count -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Taken(int bytes)
    {
        Sent += bytes;
        _statistics!.AddBytesSent(bytes);
    }

    public void Dispose()
    {
        _pace.Dispose();
        KernelSend.Return(Interlocked.Exchange(ref _kernel, null));
    }

    /// <summary>
    /// One socket operation and the awaitable its completions resume, kept from chunk to chunk and, through a small
    /// process-wide pool, from connection to connection: a chunk allocates only its <see cref="SendPacketsElement"/>.
    /// </summary>
    private sealed class KernelSend : IValueTaskSource<(SocketError, long)>
    {
        private const int PoolLimit = 64;
        private static readonly ConcurrentQueue<KernelSend> s_pool = new();
        private static int s_pooled;

        private readonly SocketAsyncEventArgs _args = new(unsafeSuppressExecutionContextFlow: true);
        private readonly SendPacketsElement?[] _elements = new SendPacketsElement?[1];
        // Continuations run on the thread that saw the completion (a pool thread): one hand-off per chunk fewer.
        private ManualResetValueTaskSourceCore<(SocketError, long)> _completion;

        private KernelSend()
        {
            _args.SendPacketsElements = _elements!;
            _args.UserToken = this;
            _args.Completed += static (_, e) => ((KernelSend)e.UserToken!).Completed();
        }

        public static KernelSend Rent()
        {
            if (s_pool.TryDequeue(out KernelSend? pooled))
            {
                Interlocked.Decrement(ref s_pooled);
                return pooled;
            }

            return new KernelSend();
        }

        public static void Return(KernelSend? send)
        {
            if (send is null)
            {
                return;
            }

            if (Interlocked.Increment(ref s_pooled) <= PoolLimit)
            {
                s_pool.Enqueue(send);
                return;
            }

            Interlocked.Decrement(ref s_pooled);
            send._args.Dispose();
        }

        public ValueTask<(SocketError, long)> SendAsync(Socket socket, FileStream file, long offset, int count)
        {
            _completion.Reset();
            _elements[0] = new SendPacketsElement(file, offset, count, endOfPacket: false);
            return socket.SendPacketsAsync(_args)
                ? new ValueTask<(SocketError, long)>(this, _completion.Version)
                : new ValueTask<(SocketError, long)>((_args.SocketError, _args.BytesTransferred));
        }

        /// <summary>Lets go of the file, so a pooled operation does not keep the last one alive.</summary>
        public void Forget() => _elements[0] = null;

        private void Completed() => _completion.SetResult((_args.SocketError, _args.BytesTransferred));

        public (SocketError, long) GetResult(short token) => _completion.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _completion.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _completion.OnCompleted(continuation, state, token, flags);
    }
}

/// <summary>
/// Times the chunks of one range at a time: each must be taken without the client falling behind the minimum data rate,
/// and without a stall timeout passing in which the client takes nothing; the next chunk is sized to take about a
/// second at the pace the client has shown, growing from 64 KiB at most fourfold per chunk. The deadline is one token
/// source reused range after range.
/// </summary>
internal sealed class ChunkPace : IDisposable
{
    // Small enough that a slow client's first chunk is judged within the timeouts, not after them.
    private const int MinChunk = 64 * 1024;

    private readonly TimeSpan _stallTimeout;
    private readonly DataRateClock? _clock;
    private readonly Func<long>? _acknowledged;
    // The floor judged again on what the client has acknowledged, every _checkEvery while a chunk is out: a chunk's own
    // allowance is its size at the floor, hours for the chunks that socket buffers of a few MiB let grow.
    private readonly DataRate _minRate;
    private readonly bool _judgesTaken;
    private readonly TimeSpan _checkEvery;
    private readonly ITimer _timer;
    private CancellationTokenSource _deadline = new();
    private long _chunkStarted;
    private long _rateDue;
    private long _acknowledgedAtCheck;
    private long _lastProgress;
    private long _takenAcknowledged = -1;
    private long _takenDue;
    private bool _judgeTaken;
    private long _nextChunk = MinChunk;
    private volatile bool _rateBound;
    private volatile bool _armed;
    private bool _disposed;
    // The timer's callback and the sending path both change the fields above, and a callback already running is not
    // waited for by Timer.Dispose: without the lock it could cancel a disposed deadline (crashing the process from a
    // timer thread) or the next range's fresh one.
    private readonly object _gate = new();

    /// <param name="acknowledged">Bytes the peer has acknowledged so far (negative if unknown), where the system tells.</param>
    public ChunkPace(TimeSpan stallTimeout, DataRate minRate, Func<long>? acknowledged = null)
    {
        _stallTimeout = stallTimeout;
        _clock = minRate.IsEnabled ? new DataRateClock(minRate) : null;
        _acknowledged = acknowledged;
        _minRate = minRate;
        _judgesTaken = minRate.IsEnabled && acknowledged is not null;
        _checkEvery = !_judgesTaken ? stallTimeout : TimeSpan.FromTicks(Math.Min(stallTimeout.Ticks, Math.Max(minRate.Grace.Ticks, TimeSpan.TicksPerSecond)));
        _timer = TimeProvider.System.CreateTimer(static s => ((ChunkPace)s!).Expired(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public CancellationToken Token => _deadline.Token;

    /// <summary>True when the deadline fired: the data rate's or the stall timeout's, not the caller's.</summary>
    public bool DeadlinePassed => _deadline.IsCancellationRequested;

    /// <summary>True when the deadline that fired was the data rate's rather than the stall timeout's.</summary>
    public bool RateExpired => _rateBound && _deadline.IsCancellationRequested;

    /// <summary>Starts a range: first chunk size, a fresh rate clock, and a deadline that <paramref name="cancellationToken"/> also fires.</summary>
    public CancellationTokenRegistration Start(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_deadline.TryReset())
            {
                // Only after a range that failed, which ends its connection.
                _deadline.Dispose();
                _deadline = new CancellationTokenSource();
            }

            _nextChunk = MinChunk;
            _rateBound = false;
            _clock?.Restart();
            _takenAcknowledged = -1;
            return cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _deadline);
        }
    }

    /// <summary>Disarms the deadline, which would otherwise fire while the connection waits for its next request.</summary>
    public void Stop()
    {
        lock (_gate)
        {
            Disarm();
        }
    }

    public int NextChunk(int max) => (int)Math.Min(max, _nextChunk);

    public void Begin(int bytes)
    {
        lock (_gate)
        {
            long now = Stopwatch.GetTimestamp();
            TimeSpan allowance = _clock?.AllowanceFor(bytes) ?? TimeSpan.MaxValue;
            _rateDue = allowance == TimeSpan.MaxValue ? long.MaxValue : now + (long)(allowance.TotalSeconds * Stopwatch.Frequency);
            // A chunk of 64 KiB fits in any socket buffer at once; only a larger one can outlast a stall timeout while the
            // client is still taking it, so only then is the system asked (a syscall) where the client stands.
            _acknowledgedAtCheck = bytes > MinChunk && _acknowledged is not null ? _acknowledged() : -1;
            if (_takenAcknowledged < 0 && _acknowledgedAtCheck >= 0)
            {
                // Counted from here, bytes and time alike: the range's first small chunks are judged by their own allowance.
                _takenAcknowledged = _acknowledgedAtCheck;
                _takenDue = now + ToTimestamp(_minRate.Grace);
            }

            _judgeTaken = true;
            _chunkStarted = _lastProgress = now;
            _armed = true;
            Arm(now);
        }
    }

    /// <summary>Arms the stall timeout alone, counted (where the system tells, see <see cref="NoteAcknowledged"/>) from the client's last acknowledged byte.</summary>
    public void BeginWithoutRate()
    {
        lock (_gate)
        {
            long now = Stopwatch.GetTimestamp();
            _rateDue = long.MaxValue;
            _acknowledgedAtCheck = -1;
            _judgeTaken = false;
            _chunkStarted = _lastProgress = now;
            _armed = true;
            Arm(now);
        }
    }

    /// <summary>
    /// Notes how much the client has acknowledged, for a write begun with <see cref="BeginWithoutRate"/> that has to
    /// wait: only such a write can outlast the stall timeout, so a write the socket takes at once asks the system nothing.
    /// </summary>
    public void NoteAcknowledged()
    {
        lock (_gate)
        {
            if (_armed && _acknowledged is not null)
            {
                _acknowledgedAtCheck = _acknowledged();
            }
        }
    }

    public void End(int bytes)
    {
        lock (_gate)
        {
            Disarm();
            double seconds = Math.Max(Stopwatch.GetElapsedTime(_chunkStarted).TotalSeconds, 0.001);
            // At most fourfold: a first chunk swallowed by socket buffers says nothing yet about the client's pace. The
            // chunk sized after a few swallowed ones can still be far more than a slow client takes within the stall
            // timeout; where the system tells how much the client has acknowledged, Expired lets it run on while it moves.
            _nextChunk = Math.Clamp(Math.Min(4L * bytes, (long)(bytes / seconds)), MinChunk, int.MaxValue);
        }
    }

    private void Arm(long now)
    {
        TimeSpan untilRateDue = _rateDue == long.MaxValue ? TimeSpan.MaxValue : TimeSpan.FromSeconds(Math.Max(0, (double)(_rateDue - now) / Stopwatch.Frequency));
        TimeSpan check = _judgeTaken && _judgesTaken && _acknowledgedAtCheck >= 0 ? _checkEvery : _stallTimeout;
        _rateBound = untilRateDue < check;
        _timer.Change(_rateBound ? untilRateDue : check, Timeout.InfiniteTimeSpan);
    }

    private void Disarm()
    {
        _armed = false;
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// The chunk outlasted its deadline. The minimum data rate's verdict stands; the stall timeout's stands only if the
    /// client acknowledged nothing since the last check, as nginx's send_timeout counts from the last byte taken.
    /// </summary>
    private void Expired()
    {
        lock (_gate)
        {
            if (!_armed || _disposed)
            {
                return;
            }

            if (!_rateBound && _acknowledgedAtCheck >= 0)
            {
                long now = Stopwatch.GetTimestamp();
                long acknowledged = _acknowledged!();
                if (_judgeTaken && _judgesTaken && _takenAcknowledged >= 0)
                {
                    // Each byte taken buys its time at the floor, but the client is never more than the grace period
                    // ahead: what socket buffers swallowed at the start buys no more than a fast start does.
                    _takenDue = Math.Min(_takenDue + ToTimestamp(_minRate.TimeFor(Math.Max(0, acknowledged - _takenAcknowledged))), now + ToTimestamp(_minRate.Grace));
                    _takenAcknowledged = acknowledged;
                    if (_takenDue < now)
                    {
                        _rateBound = true;
                        _deadline.Cancel();
                        return;
                    }
                }

                if (acknowledged > _acknowledgedAtCheck)
                {
                    _acknowledgedAtCheck = acknowledged;
                    _lastProgress = now;
                }

                if (Stopwatch.GetElapsedTime(_lastProgress, now) < _stallTimeout)
                {
                    Arm(now);
                    return;
                }
            }

            _deadline.Cancel();
        }
    }

    private static long ToTimestamp(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _timer.Dispose();
            _deadline.Dispose();
        }
    }
}

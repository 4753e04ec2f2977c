using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using FileShare.Protocol;

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

    public RangeSender(Socket? socket, Stream stream, TimeSpan stallTimeout, DataRate minRate = default)
    {
        _socket = socket;
        _stream = stream;
        _minRate = minRate;
        _pace = new ChunkPace(stallTimeout, minRate);
    }

    /// <summary>Bytes of the current (or last) range that the client has taken so far.</summary>
    public long Sent { get; private set; }

    /// <summary>Sends the range, counting each chunk the client takes into <see cref="Sent"/> and <paramref name="statistics"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(FileStream file, long offset, long count, ServerStatistics statistics, CancellationToken cancellationToken)
    {
        Sent = 0;
        _statistics = statistics;
        CancellationTokenRegistration caller = _pace.Start(cancellationToken);
        try
        {
            if (_socket is not null)
            {
                await SendWithKernelAsync(_socket, file, offset, count).ConfigureAwait(false);
            }
            else
            {
                await SendWithCopyAsync(file, offset, count).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (_pace.RateExpired && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            throw new DataRateException($"The client took the data slower than the minimum data rate of {_minRate.BytesPerSecond} bytes/s.");
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
    private async ValueTask SendWithCopyAsync(FileStream file, long offset, long count)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            while (count > 0)
            {
                int wanted = (int)Math.Min(count, _pace.NextChunk(buffer.Length));
                int read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, wanted), offset, _pace.Token).ConfigureAwait(false);
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
/// Times the chunks of one range at a time: each must be taken within the stall timeout and without the client
/// falling behind the minimum data rate; the next chunk is sized to take about a second at the pace the client has
/// shown, growing from 64 KiB at most fourfold per chunk. The deadline is one token source reused range after range.
/// </summary>
internal sealed class ChunkPace(TimeSpan stallTimeout, DataRate minRate) : IDisposable
{
    // Small enough that a slow client's first chunk is judged within the timeouts, not after them.
    private const int MinChunk = 64 * 1024;

    private readonly DataRateClock? _clock = minRate.IsEnabled ? new DataRateClock(minRate) : null;
    private CancellationTokenSource _deadline = new();
    private long _chunkStarted;
    private long _nextChunk = MinChunk;
    private bool _rateBound;

    public CancellationToken Token => _deadline.Token;

    /// <summary>True when the deadline that fired was the data rate's rather than the stall timeout's.</summary>
    public bool RateExpired => _rateBound && _deadline.IsCancellationRequested;

    /// <summary>Starts a range: first chunk size, a fresh rate clock, and a deadline that <paramref name="cancellationToken"/> also fires.</summary>
    public CancellationTokenRegistration Start(CancellationToken cancellationToken)
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
        return cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _deadline);
    }

    /// <summary>Disarms the deadline, which would otherwise fire while the connection waits for its next request.</summary>
    public void Stop() => _deadline.CancelAfter(Timeout.InfiniteTimeSpan);

    public int NextChunk(int max) => (int)Math.Min(max, _nextChunk);

    public void Begin(int bytes)
    {
        TimeSpan limit = stallTimeout;
        TimeSpan allowance = _clock?.AllowanceFor(bytes) ?? TimeSpan.MaxValue;
        _rateBound = allowance < limit;
        if (_rateBound)
        {
            limit = allowance;
        }

        _chunkStarted = Stopwatch.GetTimestamp();
        _deadline.CancelAfter(limit);
    }

    public void End(int bytes)
    {
        double seconds = Math.Max(Stopwatch.GetElapsedTime(_chunkStarted).TotalSeconds, 0.001);
        // At most fourfold: a first chunk swallowed by socket buffers says nothing yet about the client's pace, and a
        // client too slow for the next one (1 MiB at most while the buffers still swallow) falls back to 64 KiB after it.
        _nextChunk = Math.Clamp(Math.Min(4L * bytes, (long)(bytes / seconds)), MinChunk, int.MaxValue);
    }

    public void Dispose() => _deadline.Dispose();
}

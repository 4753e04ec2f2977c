using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// Sends a byte range of a file to a connection. On a plain socket it hands the range to the kernel
/// (<see cref="Socket.SendPacketsAsync"/> with a file element is sendfile(2) on Linux, TransmitPackets on Windows),
/// so file bytes never pass through managed buffers; on any other stream it copies through one pooled buffer.
/// Ranges go out in chunks sized to take about a second at the client's pace, so the stall timeout and the minimum
/// data rate are checked often for a slow client and per-call overhead stays negligible for a fast one.
/// </summary>
internal sealed class RangeSender : IDisposable
{
    private const int MaxKernelChunk = 4 * 1024 * 1024;
    private const int CopyBuffer = 256 * 1024;

    private readonly Socket? _socket;
    private readonly Stream _stream;
    private readonly TimeSpan _stallTimeout;
    private readonly DataRate _minRate;
    private SocketAsyncEventArgs? _args;
    private readonly SendPacketsElement[] _elements = new SendPacketsElement[1];

    public RangeSender(Socket? socket, Stream stream, TimeSpan stallTimeout, DataRate minRate = default)
    {
        _socket = socket;
        _stream = stream;
        _stallTimeout = stallTimeout;
        _minRate = minRate;
    }

    public async Task SendAsync(FileStream file, long offset, long count, Action<long> sent, CancellationToken cancellationToken)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pace = new ChunkPace(_stallTimeout, _minRate, stall);
        try
        {
            if (_socket is not null)
            {
                await SendWithKernelAsync(file, offset, count, sent, pace).ConfigureAwait(false);
            }
            else
            {
                await SendWithCopyAsync(file, offset, count, sent, pace).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (pace.RateExpired && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            throw new DataRateException($"The client took the data slower than the minimum data rate of {_minRate.BytesPerSecond} bytes/s.");
        }
    }

    private async Task SendWithKernelAsync(FileStream file, long offset, long count, Action<long> sent, ChunkPace pace)
    {
        Socket socket = _socket!;
        using CancellationTokenRegistration abort = pace.Token.UnsafeRegister(static s => ((Socket)s!).Dispose(), socket);
        while (count > 0)
        {
            int chunk = (int)Math.Min(count, pace.NextChunk(MaxKernelChunk));
            pace.Begin(chunk);
            _elements[0] = new SendPacketsElement(file, offset, chunk, endOfPacket: false);
            (SocketError error, long transferred) = await SendPacketsAsync(socket).ConfigureAwait(false);
            pace.Token.ThrowIfCancellationRequested();
            if (error != SocketError.Success)
            {
                throw new SocketException((int)error);
            }

            if (transferred != chunk)
            {
                throw new IOException($"The file ended {chunk - transferred} bytes early while it was being sent.");
            }

            pace.End(chunk);
            sent(chunk);
            offset += chunk;
            count -= chunk;
        }
    }

    private async Task SendWithCopyAsync(FileStream file, long offset, long count, Action<long> sent, ChunkPace pace)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            while (count > 0)
            {
                int wanted = (int)Math.Min(count, pace.NextChunk(buffer.Length));
                int read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, wanted), offset, pace.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException($"The file ended {count} bytes early while it was being sent.");
                }

                pace.Begin(read);
                await _stream.WriteAsync(buffer.AsMemory(0, read), pace.Token).ConfigureAwait(false);
                pace.End(read);
                sent(read);
                offset += read;
                count -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private Task<(SocketError, long)> SendPacketsAsync(Socket socket)
    {
        if (_args is null)
        {
            _args = new SocketAsyncEventArgs();
            _args.Completed += static (_, e) => ((TaskCompletionSource<(SocketError, long)>)e.UserToken!).TrySetResult((e.SocketError, e.BytesTransferred));
        }

        var completion = new TaskCompletionSource<(SocketError, long)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _args.UserToken = completion;
        _args.SendPacketsElements = _elements;
        if (!socket.SendPacketsAsync(_args))
        {
            completion.TrySetResult((_args.SocketError, _args.BytesTransferred));
        }

        return completion.Task;
    }

    public void Dispose() => _args?.Dispose();
}

/// <summary>
/// Times the chunks of one range: each must be taken within the stall timeout and without the client falling behind
/// the minimum data rate; the next chunk is sized to take about a second at the pace the client has shown, growing
/// from 64 KiB at most fourfold per chunk, so a fast client reaches the largest chunk on the fourth.
/// </summary>
internal sealed class ChunkPace(TimeSpan stallTimeout, DataRate minRate, CancellationTokenSource deadline)
{
    // Small enough that a slow client's first chunk is judged within the timeouts, not after them.
    private const int MinChunk = 64 * 1024;

    private readonly DataRateClock? _clock = minRate.IsEnabled ? new DataRateClock(minRate) : null;
    private long _chunkStarted;
    private long _nextChunk = MinChunk;

    public CancellationToken Token => deadline.Token;

    private bool _rateBound;

    /// <summary>True when the deadline that fired was the data rate's rather than the stall timeout's.</summary>
    public bool RateExpired => _rateBound && deadline.IsCancellationRequested;

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
        deadline.CancelAfter(limit);
    }

    public void End(int bytes)
    {
        double seconds = Math.Max(Stopwatch.GetElapsedTime(_chunkStarted).TotalSeconds, 0.001);
        // At most fourfold: a first chunk swallowed by socket buffers says nothing yet about the client's pace, and a
        // client too slow for the next one (1 MiB at most while the buffers still swallow) falls back to 64 KiB after it.
        _nextChunk = Math.Clamp(Math.Min(4L * bytes, (long)(bytes / seconds)), MinChunk, int.MaxValue);
    }
}

using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace FileShare.Protocol;

public readonly record struct Frame(FrameType Type, uint RequestId, ReadOnlyMemory<byte> Body);

/// <summary>
/// Length-prefixed frames over a stream: [u32 body length][u8 type][u32 request id][body]. Used by both ends.
/// Buffers come from the shared pool and start small; they grow only when a frame needs it.
/// A frame's body is valid until the next read. A connection's frames share one deadline and one rate clock.
/// </summary>
public sealed class FrameChannel : IDisposable
{
    // Requests and most replies (a hash reply up to 10 pieces) fit; a list batch grows the buffer once it needs to.
    private const int InitialBuffer = 512;
    private readonly Stream _stream;
    private readonly int _maxBody;
    private readonly bool _readAhead;
    private byte[] _receive;
    private byte[] _send;
    private CancellationTokenSource? _frameDeadline;
    private DataRateClock? _clock;
    private DataRate _clockRate;

    // With read-ahead, the bytes received but not yet taken as frames: _receive[_start.._end).
    private int _start;
    private int _end;

    // Bytes of whole frames at the start of _send, held back to go out with the next one.
    private int _held;

    /// <param name="readAhead">
    /// Take whatever the peer has sent in one read and cut frames from it, so pipelined frames cost one receive
    /// between them. Raw bytes that follow a frame must then be read through <see cref="ReadRawAsync"/>, never from
    /// the stream itself.
    /// </param>
    /// <param name="receiveBuffer">
    /// The read-ahead buffer's first size: a client's, large enough that a small file's bytes arrive in the receive
    /// that brings their reply (one receive per file fewer), where a server's only ever holds requests.
    /// </param>
    public FrameChannel(Stream stream, int maxBody = ProtocolConstants.MaxFrameBody, bool readAhead = false, int receiveBuffer = InitialBuffer)
    {
        _stream = stream;
        _maxBody = maxBody;
        _readAhead = readAhead;
        _receive = ArrayPool<byte>.Shared.Rent(receiveBuffer);
        _send = ArrayPool<byte>.Shared.Rent(InitialBuffer);
    }

    /// <summary>Whether (with read-ahead) bytes of the next frame have already arrived.</summary>
    public bool HasReadAhead => _end > _start;

    /// <summary>The type of the next frame when (with read-ahead) all of it has arrived, so reading it will not wait for the peer; otherwise null.</summary>
    public FrameType? NextFrameReadAhead
    {
        get
        {
            if (_end - _start < ProtocolConstants.FrameHeaderLength)
            {
                return null;
            }

            uint bodyLength = BinaryPrimitives.ReadUInt32BigEndian(_receive.AsSpan(_start));
            return bodyLength <= (uint)_maxBody && _end - _start >= ProtocolConstants.FrameHeaderLength + (int)bodyLength
                ? (FrameType)_receive[_start + 4]
                : null;
        }
    }

    /// <summary>
    /// Reads raw bytes that follow a frame (a read reply's data): first whatever read-ahead already took in, then the
    /// stream itself. Returns 0 only at the end of the stream.
    /// </summary>
    public ValueTask<int> ReadRawAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int buffered = _end - _start;
        if (buffered == 0)
        {
            return _stream.ReadAsync(buffer, cancellationToken);
        }

        int taken = Math.Min(buffered, buffer.Length);
        _receive.AsSpan(_start, taken).CopyTo(buffer.Span);
        _start += taken;
        return ValueTask.FromResult(taken);
    }

    /// <summary>Reads one frame; null when the peer closed the connection cleanly between frames.</summary>
    /// <param name="cancellationToken">Bounds the wait for the frame's first byte (and everything after it).</param>
    /// <param name="minRate">Once the first byte is in, the rest must follow at least this fast, or <see cref="DataRateException"/>.</param>
    public ValueTask<Frame?> ReadFrameAsync(CancellationToken cancellationToken, DataRate minRate = default) =>
        _readAhead ? ReadBufferedFrameAsync(cancellationToken, minRate) : ReadExactFrameAsync(cancellationToken, minRate);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Frame?> ReadBufferedFrameAsync(CancellationToken cancellationToken, DataRate minRate)
    {
        if (_end == _start)
        {
            (_start, _end) = (0, 0);
            int first = await _stream.ReadAsync(_receive, cancellationToken).ConfigureAwait(false);
            if (first == 0)
            {
                return null;
            }

            _end = first;
        }

        FrameDeadline deadline = ArmFrameDeadline(minRate, cancellationToken);
        try
        {
            deadline.Allow(ProtocolConstants.FrameHeaderLength);
            await FillAsync(ProtocolConstants.FrameHeaderLength, deadline.Token).ConfigureAwait(false);
            FrameHeader header = ParseHeader(_receive.AsSpan(_start, ProtocolConstants.FrameHeaderLength));
            deadline.Allow(header.BodyLength);
            int frameLength = ProtocolConstants.FrameHeaderLength + header.BodyLength;
            await FillAsync(frameLength, deadline.Token).ConfigureAwait(false);
            var frame = new Frame(header.Type, header.RequestId, _receive.AsMemory(_start + ProtocolConstants.FrameHeaderLength, header.BodyLength));
            _start += frameLength;
            return frame;
        }
        catch (OperationCanceledException) when (deadline.Missed && !cancellationToken.IsCancellationRequested)
        {
            throw SlowerThan(minRate);
        }
        finally
        {
            deadline.Disarm();
        }
    }

    /// <summary>Reads until at least <paramref name="needed"/> bytes from <c>_start</c> are in, moving them to the front (or a larger buffer) when they would not fit.</summary>
    private async ValueTask FillAsync(int needed, CancellationToken cancellationToken)
    {
        if (_receive.Length - _start < needed)
        {
            byte[] target = _receive.Length >= needed ? _receive : ArrayPool<byte>.Shared.Rent(needed);
            Buffer.BlockCopy(_receive, _start, target, 0, _end - _start);
            if (target != _receive)
            {
                ArrayPool<byte>.Shared.Return(_receive);
                _receive = target;
            }

            (_start, _end) = (0, _end - _start);
        }

        while (_end - _start < needed)
        {
            int read = await _stream.ReadAsync(_receive.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException();
            }

            _end += read;
        }
    }

    private async ValueTask<Frame?> ReadExactFrameAsync(CancellationToken cancellationToken, DataRate minRate)
    {
        Memory<byte> header = _receive.AsMemory(0, ProtocolConstants.FrameHeaderLength);
        int first = await _stream.ReadAsync(header, cancellationToken).ConfigureAwait(false);
        if (first == 0)
        {
            return null;
        }

        FrameDeadline deadline = ArmFrameDeadline(minRate, cancellationToken);
        try
        {
            deadline.Allow(ProtocolConstants.FrameHeaderLength);
            await _stream.ReadExactlyAsync(header[first..], deadline.Token).ConfigureAwait(false);
            FrameHeader parsed = ParseHeader(header.Span);
            deadline.Allow(parsed.BodyLength);
            EnsureCapacity(ref _receive, parsed.BodyLength);
            Memory<byte> body = _receive.AsMemory(0, parsed.BodyLength);
            await _stream.ReadExactlyAsync(body, deadline.Token).ConfigureAwait(false);
            return new Frame(parsed.Type, parsed.RequestId, body);
        }
        catch (OperationCanceledException) when (deadline.Missed && !cancellationToken.IsCancellationRequested)
        {
            throw SlowerThan(minRate);
        }
        finally
        {
            deadline.Disarm();
        }
    }

    private FrameHeader ParseHeader(ReadOnlySpan<byte> header)
    {
        uint bodyLength = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (bodyLength > (uint)_maxBody)
        {
            throw new ProtocolException($"Frame of {bodyLength} bytes exceeds the limit of {_maxBody}.");
        }

        return new FrameHeader((FrameType)header[4], BinaryPrimitives.ReadUInt32BigEndian(header[5..]), (int)bodyLength);
    }

    private readonly record struct FrameHeader(FrameType Type, uint RequestId, int BodyLength);

    private static DataRateException SlowerThan(DataRate minRate) =>
        new($"A frame arrived slower than the minimum data rate of {minRate.BytesPerSecond} bytes/s.");

    /// <summary>The rest of a frame must arrive at the minimum rate: one clock and one token source per connection, reused.</summary>
    private FrameDeadline ArmFrameDeadline(DataRate minRate, CancellationToken cancellationToken)
    {
        if (!minRate.IsEnabled)
        {
            return new FrameDeadline(null, null, default, cancellationToken);
        }

        DataRateClock clock = RestartClock(minRate);
        CancellationTokenSource source = RenewFrameDeadline();
        CancellationTokenRegistration linked = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), source);
        return new FrameDeadline(clock, source, linked, source.Token);
    }

    private readonly record struct FrameDeadline(DataRateClock? Clock, CancellationTokenSource? Source, CancellationTokenRegistration Linked, CancellationToken Token)
    {
        public bool Missed => Source is { IsCancellationRequested: true };

        public void Allow(long bytes) => Source?.CancelAfter(Clock!.AllowanceFor(bytes));

        public void Disarm()
        {
            Linked.Dispose();
            // Disarmed, or it would fire while the connection waits for its next frame and could not be reused.
            Source?.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    private DataRateClock RestartClock(DataRate rate)
    {
        if (_clock is null || _clockRate != rate)
        {
            (_clock, _clockRate) = (new DataRateClock(rate), rate);
            return _clock;
        }

        _clock.Restart();
        return _clock;
    }

    private CancellationTokenSource RenewFrameDeadline()
    {
        if (_frameDeadline is null || !_frameDeadline.TryReset())
        {
            // Only the first time, or after a frame that missed its deadline.
            _frameDeadline?.Dispose();
            _frameDeadline = new CancellationTokenSource();
        }

        return _frameDeadline;
    }

    /// <summary>Gives a writer over the body of the next frame, with room for at least <paramref name="bodyCapacity"/> bytes.</summary>
    public SpanWriter BeginFrame(int bodyCapacity)
    {
        if (bodyCapacity > _maxBody)
        {
            // Frames held for this one go nowhere either: the caller's exchange has failed as a whole.
            _held = 0;
            throw new ProtocolException($"Frame of {bodyCapacity} bytes exceeds the limit of {_maxBody}.");
        }

        int needed = _held + ProtocolConstants.FrameHeaderLength + bodyCapacity;
        if (_send.Length < needed)
        {
            // Frames held back for the next write move along.
            byte[] larger = ArrayPool<byte>.Shared.Rent(needed);
            _send.AsSpan(0, _held).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_send);
            _send = larger;
        }

        return new SpanWriter(_send.AsSpan(_held + ProtocolConstants.FrameHeaderLength, bodyCapacity));
    }

    /// <summary>
    /// Room for <paramref name="count"/> raw bytes that follow a body of <paramref name="bodyLength"/> bytes, within the
    /// capacity given to <see cref="BeginFrame"/>; <see cref="SendFrameAsync"/> with <c>trailing</c> sends them in the same write.
    /// </summary>
    public Span<byte> AfterBody(int bodyLength, int count) => _send.AsSpan(_held + ProtocolConstants.FrameHeaderLength + bodyLength, count);

    /// <summary>
    /// Completes the frame begun by <see cref="BeginFrame"/> but holds it back, to go out in one write with the next
    /// frame sent (its peer gets both in one segment). Every path after this must send a frame or <see cref="FlushAsync"/>.
    /// </summary>
    public void HoldFrame(FrameType type, uint requestId, int bodyLength)
    {
        WriteHeader(type, requestId, bodyLength);
        _held += ProtocolConstants.FrameHeaderLength + bodyLength;
    }

    /// <summary>Sends the frame begun by <see cref="BeginFrame"/> whose body the writer filled (after any held frames), and <paramref name="trailing"/> raw bytes after it.</summary>
    public ValueTask SendFrameAsync(FrameType type, uint requestId, int bodyLength, CancellationToken cancellationToken, int trailing = 0)
    {
        WriteHeader(type, requestId, bodyLength);
        int length = _held + ProtocolConstants.FrameHeaderLength + bodyLength + trailing;
        _held = 0;
        return _stream.WriteAsync(_send.AsMemory(0, length), cancellationToken);
    }

    /// <summary>Sends any frames held back by <see cref="HoldFrame"/>.</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        int length = _held;
        _held = 0;
        return length == 0 ? ValueTask.CompletedTask : _stream.WriteAsync(_send.AsMemory(0, length), cancellationToken);
    }

    private void WriteHeader(FrameType type, uint requestId, int bodyLength)
    {
        Span<byte> header = _send.AsSpan(_held, ProtocolConstants.FrameHeaderLength);
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)bodyLength);
        header[4] = (byte)type;
        BinaryPrimitives.WriteUInt32BigEndian(header[5..], requestId);
    }

    public ValueTask SendErrorAsync(FrameType type, uint requestId, StatusCode status, string message, CancellationToken cancellationToken) =>
        SendFrameAsync(type, requestId, BeginError(status, message), cancellationToken);

    /// <summary>Begins an error reply's frame, to be sent by <see cref="SendFrameAsync"/>; returns its body's length.</summary>
    public int BeginError(StatusCode status, string message)
    {
        SpanWriter writer = BeginFrame(2 + SpanWriter.StringSize(message) + 8);
        Messages.WriteError(ref writer, status, message);
        return writer.Position;
    }

    public void Dispose()
    {
        _frameDeadline?.Dispose();
        ReturnOnce(ref _receive);
        ReturnOnce(ref _send);
    }

    private static void ReturnOnce(ref byte[] buffer)
    {
        byte[] rented = Interlocked.Exchange(ref buffer, []);
        if (rented.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void EnsureCapacity(ref byte[] buffer, int needed)
    {
        if (buffer.Length >= needed)
        {
            return;
        }

        byte[] larger = ArrayPool<byte>.Shared.Rent(needed);
        ArrayPool<byte>.Shared.Return(buffer);
        buffer = larger;
    }
}

using System.Buffers.Binary;
using System.Text;

namespace FileShare.Protocol;

/// <summary>Big-endian writer over a caller's buffer; throws <see cref="ProtocolException"/> rather than overrun.</summary>
public ref struct SpanWriter
{
    private readonly Span<byte> _buffer;

    public SpanWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        Position = 0;
    }

    public int Position { get; private set; }

    public int Remaining => _buffer.Length - Position;

    public void WriteByte(byte value) => Take(1)[0] = value;

    public void WriteUInt16(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Take(2), value);

    public void WriteUInt32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Take(4), value);

    public void WriteInt64(long value) => BinaryPrimitives.WriteInt64BigEndian(Take(8), value);

    public void WriteString(string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        WriteUInt32((uint)length);
        Encoding.UTF8.GetBytes(value, Take(length));
    }

    public void WriteBytes(ReadOnlySpan<byte> value) => value.CopyTo(Take(value.Length));


    public static int StringSize(string value) => 4 + Encoding.UTF8.GetByteCount(value);

    private Span<byte> Take(int count)
    {
        if (count > Remaining)
        {
            throw new ProtocolException("Frame body would exceed its buffer.");
        }

        Span<byte> slice = _buffer.Slice(Position, count);
        Position += count;
        return slice;
    }
}

/// <summary>Big-endian reader over a received frame body; any malformed field is a <see cref="ProtocolException"/>.</summary>
public ref struct SpanReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ReadOnlySpan<byte> _buffer;

    public SpanReader(ReadOnlySpan<byte> buffer)
    {
        _buffer = buffer;
        Position = 0;
    }

    public int Position { get; private set; }

    public int Remaining => _buffer.Length - Position;

    public byte ReadByte() => Take(1)[0];

    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16BigEndian(Take(2));

    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32BigEndian(Take(4));

    public long ReadInt64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

    public byte[] ReadBytes(int count) => Take(count).ToArray();

    /// <summary>A UTC time sent as .NET ticks; ticks outside DateTime's range are a protocol error.</summary>
    public DateTime ReadUtcTime()
    {
        long ticks = ReadInt64();
        if (ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks)
        {
            throw new ProtocolException($"Time of {ticks} ticks is out of range.");
        }

        return new DateTime(ticks, DateTimeKind.Utc);
    }

    public string ReadString(int maxBytes = ProtocolConstants.MaxPathBytes)
    {
        uint length = ReadUInt32();
        if (length > (uint)maxBytes)
        {
            throw new ProtocolException($"String of {length} bytes exceeds the limit of {maxBytes}.");
        }

        try
        {
            return StrictUtf8.GetString(Take((int)length));
        }
        catch (DecoderFallbackException)
        {
            throw new ProtocolException("String is not valid UTF-8.");
        }
    }

    public void EnsureEnd()
    {
        if (Remaining != 0)
        {
            throw new ProtocolException($"Frame has {Remaining} unexpected trailing bytes.");
        }
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > Remaining)
        {
            throw new ProtocolException("Frame ends before its fields do.");
        }

        ReadOnlySpan<byte> slice = _buffer.Slice(Position, count);
        Position += count;
        return slice;
    }
}

/// <summary>The peer sent bytes that do not follow the protocol.</summary>
public sealed class ProtocolException(string message) : Exception(message);

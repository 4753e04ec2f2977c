namespace FileShare.Protocol;

/// <summary>
/// Which pieces of a file a copy holds: one bit per piece, bit i in byte i / 8, least significant bit first (the
/// wire and state-record layout). Setting a bit is thread-safe, so pieces verified on several connections can be
/// recorded as they land.
/// </summary>
public sealed class PieceMap
{
    private readonly int[] _words;

    public PieceMap(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Count = count;
        _words = new int[(count + 31) / 32];
    }

    public int Count { get; }

    public static int ByteLength(int count) => (count + 7) / 8;

    public static PieceMap FromBytes(ReadOnlySpan<byte> bits, int count)
    {
        if (bits.Length != ByteLength(count))
        {
            throw new ProtocolException($"A map of {count} pieces takes {ByteLength(count)} bytes, not {bits.Length}.");
        }

        var map = new PieceMap(count);
        for (int i = 0; i < count; i++)
        {
            if ((bits[i / 8] & (1 << (i % 8))) != 0)
            {
                map.Set(i);
            }
        }

        return map;
    }

    public bool Has(int piece) => (Volatile.Read(ref _words[piece / 32]) & (1 << (piece % 32))) != 0;

    public void Set(int piece) => Interlocked.Or(ref _words[piece / 32], 1 << (piece % 32));

    public int HeldCount
    {
        get
        {
            int held = 0;
            for (int i = 0; i < _words.Length; i++)
            {
                held += System.Numerics.BitOperations.PopCount((uint)Volatile.Read(ref _words[i]));
            }

            return held;
        }
    }

    public bool IsComplete => HeldCount == Count;

    /// <summary>True when every piece that overlaps bytes [offset, offset + length) is held.</summary>
    public bool HoldsRange(long offset, long length, int pieceSize)
    {
        if (length <= 0)
        {
            return true;
        }

        int first = (int)(offset / pieceSize);
        int last = (int)((offset + length - 1) / pieceSize);
        for (int piece = first; piece <= last; piece++)
        {
            if (piece >= Count || !Has(piece))
            {
                return false;
            }
        }

        return true;
    }

    public void WriteTo(Span<byte> destination)
    {
        destination[..ByteLength(Count)].Clear();
        for (int i = 0; i < Count; i++)
        {
            if (Has(i))
            {
                destination[i / 8] |= (byte)(1 << (i % 8));
            }
        }
    }

    public byte[] ToBytes()
    {
        byte[] bytes = new byte[ByteLength(Count)];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>Runs of pieces not held, as byte ranges of a file of <paramref name="length"/> bytes ("0-4194303, 8388608-9999999").</summary>
    public static string DescribeRanges(IEnumerable<int> pieces, long length, int pieceSize)
    {
        var ranges = new List<string>();
        int runStart = -1, previous = -2;
        foreach (int piece in pieces.Order().Append(int.MaxValue))
        {
            if (piece != previous + 1)
            {
                if (runStart >= 0)
                {
                    long start = (long)runStart * pieceSize;
                    long end = Math.Min(length, (long)(previous + 1) * pieceSize) - 1;
                    ranges.Add($"{start}-{end}");
                }

                runStart = piece;
            }

            previous = piece;
        }

        return string.Join(", ", ranges);
    }
}

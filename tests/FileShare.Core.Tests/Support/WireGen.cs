using System.Buffers.Binary;
using CsCheck;
using FileShare.Protocol;

namespace FileShare.Tests.Support;

/// <summary>
/// Generators of hostile wire input: well-formed bodies of every message, then mutated (bytes flipped, cut short,
/// lengths blown up, junk appended), and plain noise. Shared by the decoder properties and the live barrage.
/// </summary>
public static class WireGen
{
    /// <summary>Names that probe the path rules: dots, separators of every kind, NUL, percent escapes, look-alikes.</summary>
    public static readonly Gen<string> Name = Gen.String[Gen.Char["./\\:%2eE\0 \t\u00E9\u0301\uFF0E\u2025\u2215abc~$"], 0, 24];

    public static readonly Gen<long> Int64 = Gen.OneOf(Gen.Long, Gen.Const(-1L), Gen.Const(0L), Gen.Const(long.MaxValue), Gen.Long[-10, 1 << 20]);

    private static readonly Gen<RemoteEntry> Entry =
        Gen.Select(Name, Gen.Long[0, long.MaxValue], Gen.Long[0, DateTime.MaxValue.Ticks], Gen.Bool, Gen.Byte.Array[32, 32],
            (name, length, ticks, hashed, hash) => new RemoteEntry(name, length, new DateTime(ticks, DateTimeKind.Utc), EntryKind.File, hashed ? hash : null));

    /// <summary>A well-formed body of some message, request or reply.</summary>
    public static readonly Gen<byte[]> ValidBody = Gen.OneOf(
        Gen.Select(Name, Gen.Byte, (name, options) => Write(1 + SpanWriter.StringSize(name), (ref SpanWriter w) => Messages.WriteListRequest(ref w, name, (ListOptions)options))),
        Name.Select(name => Write(SpanWriter.StringSize(name), (ref SpanWriter w) => Messages.WritePathRequest(ref w, name))),
        Gen.Select(Name, Int64, Int64, (name, offset, length) => Write(SpanWriter.StringSize(name) + 16, (ref SpanWriter w) => Messages.WriteReadRequest(ref w, name, offset, length))),
        Gen.Select(Gen.UShort, Name, (status, message) => Write(2 + SpanWriter.StringSize(message), (ref SpanWriter w) => Messages.WriteError(ref w, (StatusCode)status, message))),
        Gen.Select(Gen.Bool, Entry.Array[0, 8], (last, entries) => Write(Messages.ListReplyPrefix + entries.Sum(e => Messages.EntrySize(e)), (ref SpanWriter w) =>
        {
            Messages.WriteListReplyPrefix(ref w, last, entries.Length);
            foreach (RemoteEntry entry in entries)
            {
                Messages.WriteEntry(ref w, entry);
            }
        })),
        Entry.Select(entry => Write(2 + Messages.EntrySize(entry), (ref SpanWriter w) => Messages.WriteStatReply(ref w, entry))),
        Gen.Select(Int64, Int64, Gen.Long[0, DateTime.MaxValue.Ticks], (data, file, ticks) => Write(32, (ref SpanWriter w) => Messages.WriteReadReply(ref w, new RangeReply(data, file, new DateTime(ticks, DateTimeKind.Utc))))),
        Gen.Select(Gen.Long[0, 64L << 20], Gen.Byte.Array[32, 32], (length, sha) =>
        {
            int pieces = FileDigest.PieceCountFor(length, ProtocolConstants.PieceSize);
            var digest = new FileDigest(length, DateTime.UnixEpoch, sha, ProtocolConstants.PieceSize, new byte[pieces * ProtocolConstants.Sha256Length]);
            return Write(Messages.HashReplySize(digest), (ref SpanWriter w) => Messages.WriteHashReply(ref w, digest));
        }));

    /// <summary>A valid body, mutated zero or more times, or plain noise.</summary>
    public static readonly Gen<byte[]> Body = Gen.Frequency(
        (2, ValidBody),
        (6, Gen.Select(ValidBody, Gen.Int[1, 4], Gen.Int, (body, times, seed) => Mutate(body, times, new Random(seed)))),
        (2, Gen.Byte.Array[0, 200]));

    /// <summary>A whole frame: a type from the protocol or any byte, a request id, a body, sometimes a lying length.</summary>
    public static readonly Gen<byte[]> Frame = Gen.Select(
        Gen.Frequency((4, Gen.OneOf(Enum.GetValues<FrameType>().Select(t => Gen.Const(t)).ToArray())), (1, Gen.Byte.Select(b => (FrameType)b))),
        Gen.UInt, Body, Gen.Frequency((9, Gen.Const((uint?)null)), (1, Gen.UInt.Select(u => (uint?)u))),
        (type, id, body, declared) =>
        {
            byte[] frame = RawPeer.Frame(type, id, body);
            if (declared is { } length)
            {
                BinaryPrimitives.WriteUInt32BigEndian(frame, length);
            }

            return frame;
        });

    private delegate void BodyWriter(ref SpanWriter writer);

    private static byte[] Write(int size, BodyWriter write)
    {
        byte[] body = new byte[size];
        var writer = new SpanWriter(body);
        write(ref writer);
        return body[..writer.Position];
    }

    private static byte[] Mutate(byte[] body, int times, Random random)
    {
        var bytes = new List<byte>(body);
        for (int i = 0; i < times; i++)
        {
            switch (random.Next(5))
            {
                case 0 when bytes.Count > 0:
                    bytes[random.Next(bytes.Count)] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes = bytes.GetRange(0, random.Next(bytes.Count));
                    break;
                case 2 when bytes.Count >= 4:
                    // A length or count field blown up: the reader must refuse, never allocate for it.
                    int at = random.Next(bytes.Count - 3);
                    uint huge = random.Next(3) switch { 0 => uint.MaxValue, 1 => int.MaxValue, _ => (uint)random.Next() };
                    byte[] field = new byte[4];
                    BinaryPrimitives.WriteUInt32BigEndian(field, huge);
                    for (int k = 0; k < 4; k++)
                    {
                        bytes[at + k] = field[k];
                    }

                    break;
                case 3:
                    byte[] junk = new byte[random.Next(1, 16)];
                    random.NextBytes(junk);
                    bytes.InsertRange(random.Next(bytes.Count + 1), junk);
                    break;
                default:
                    if (bytes.Count > 0)
                    {
                        bytes[random.Next(bytes.Count)] = (byte)random.Next(256);
                    }

                    break;
            }
        }

        return [.. bytes];
    }
}

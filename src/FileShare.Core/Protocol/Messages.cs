namespace FileShare.Protocol;

/// <summary>
/// Encoders and decoders for every message body. Both the server and the client call these, so a field can only
/// change in one place.
/// </summary>
public static class Messages
{
    public static void WriteClientHello(Span<byte> destination, ushort minVersion, ushort maxVersion, uint features)
    {
        var writer = new SpanWriter(destination);
        writer.WriteBytes(ProtocolConstants.Magic);
        writer.WriteUInt16(minVersion);
        writer.WriteUInt16(maxVersion);
        writer.WriteUInt32(features);
    }

    public static void WriteServerHello(Span<byte> destination, ushort version, StatusCode status, uint features)
    {
        var writer = new SpanWriter(destination);
        writer.WriteBytes(ProtocolConstants.Magic);
        writer.WriteUInt16(version);
        writer.WriteUInt16((ushort)status);
        writer.WriteUInt32(features);
    }

    public static bool StartsWithMagic(ReadOnlySpan<byte> data) =>
        data.Length >= ProtocolConstants.Magic.Length && data[..ProtocolConstants.Magic.Length].SequenceEqual(ProtocolConstants.Magic);

    /// <summary>Reads either hello: the version field is a range start for the client and the chosen version for the server.</summary>
    public static (ushort First, ushort Second, uint Features) ReadHello(ReadOnlySpan<byte> source)
    {
        if (!StartsWithMagic(source))
        {
            throw new ProtocolException("Peer did not send the FileShare handshake.");
        }

        var reader = new SpanReader(source[ProtocolConstants.Magic.Length..ProtocolConstants.HelloLength]);
        return (reader.ReadUInt16(), reader.ReadUInt16(), reader.ReadUInt32());
    }

    public static void WriteListRequest(ref SpanWriter writer, string folder, ListOptions options)
    {
        writer.WriteByte((byte)options);
        writer.WriteString(folder);
    }

    public static (string Folder, ListOptions Options) ReadListRequest(ReadOnlySpan<byte> body)
    {
        var reader = new SpanReader(body);
        var options = (ListOptions)reader.ReadByte();
        string folder = reader.ReadString();
        reader.EnsureEnd();
        return (folder, options);
    }

    public static void WritePathRequest(ref SpanWriter writer, string path) => writer.WriteString(path);

    public static string ReadPathRequest(ReadOnlySpan<byte> body)
    {
        var reader = new SpanReader(body);
        string path = reader.ReadString();
        reader.EnsureEnd();
        return path;
    }

    public static void WriteReadRequest(ref SpanWriter writer, string path, long offset, long length)
    {
        writer.WriteString(path);
        writer.WriteInt64(offset);
        writer.WriteInt64(length);
    }

    public static (string Path, long Offset, long Length) ReadReadRequest(ReadOnlySpan<byte> body)
    {
        var reader = new SpanReader(body);
        string path = reader.ReadString();
        long offset = reader.ReadInt64();
        long length = reader.ReadInt64();
        reader.EnsureEnd();
        return (path, offset, length);
    }

    /// <summary>Every reply starts with a status; a failed reply carries only a message after it.</summary>
    public static void WriteError(ref SpanWriter writer, StatusCode status, string message)
    {
        writer.WriteUInt16((ushort)status);
        writer.WriteString(message.Length > 1024 ? message[..1024] : message);
    }

    public static StatusCode ReadStatus(ref SpanReader reader, out string? message)
    {
        var status = (StatusCode)reader.ReadUInt16();
        message = null;
        if (status != StatusCode.Ok)
        {
            // The message ends a failed reply; checked here because the callers return as soon as they see the status.
            message = reader.ReadString(4096);
            reader.EnsureEnd();
        }

        return status;
    }

    /// <summary>
    /// Entry layout: name, length, last write ticks, kind, hash length (0 or 32), hash; then, when piece maps were
    /// asked for, u8 partial (0: the whole file) and for a partial copy u32 piece size, u32 piece count, the map.
    /// </summary>
    public static int EntrySize(RemoteEntry entry, bool withPieces = false) =>
        SpanWriter.StringSize(entry.Name) + 8 + 8 + 1 + 1 + (entry.Sha256?.Length ?? 0)
        + (withPieces ? 1 + (entry.Pieces is null ? 0 : 8 + PieceMap.ByteLength(entry.Pieces.Held.Count)) : 0);

    public static void WriteEntry(ref SpanWriter writer, RemoteEntry entry, bool withPieces = false)
    {
        writer.WriteString(entry.Name);
        writer.WriteInt64(entry.Length);
        writer.WriteInt64(entry.LastWriteTimeUtc.Ticks);
        writer.WriteByte((byte)entry.Kind);
        writer.WriteByte((byte)(entry.Sha256?.Length ?? 0));
        writer.WriteBytes(entry.Sha256);
        if (!withPieces)
        {
            return;
        }

        writer.WriteByte(entry.Pieces is null ? (byte)0 : (byte)1);
        if (entry.Pieces is { } pieces)
        {
            writer.WriteUInt32((uint)pieces.PieceSize);
            writer.WriteUInt32((uint)pieces.Held.Count);
            byte[] map = pieces.Held.ToBytes();
            writer.WriteBytes(map);
        }
    }

    public static RemoteEntry ReadEntry(ref SpanReader reader, bool withPieces = false)
    {
        string name = reader.ReadString();
        long length = reader.ReadInt64();
        DateTime lastWrite = reader.ReadUtcTime();
        var kind = (EntryKind)reader.ReadByte();
        int hashLength = reader.ReadByte();
        if (length < 0 || hashLength is not (0 or ProtocolConstants.Sha256Length))
        {
            throw new ProtocolException($"Entry '{name}' has an impossible length or hash.");
        }

        byte[]? hash = hashLength == 0 ? null : reader.ReadBytes(hashLength);
        PieceAvailability? pieces = null;
        if (withPieces && reader.ReadByte() != 0)
        {
            uint pieceSize = reader.ReadUInt32();
            uint pieceCount = reader.ReadUInt32();
            if (pieceSize == 0 || pieceSize > int.MaxValue || pieceCount != FileDigest.PieceCountFor(length, (int)pieceSize))
            {
                throw new ProtocolException($"Entry '{name}' has an impossible piece map.");
            }

            pieces = new PieceAvailability((int)pieceSize, PieceMap.FromBytes(reader.ReadBytes(PieceMap.ByteLength((int)pieceCount)), (int)pieceCount));
        }

        return new RemoteEntry(name, length, lastWrite, kind, hash, pieces);
    }

    /// <summary>
    /// List reply layout: status, flags byte (bit 0: last frame; bit 1: entries carry piece maps), entry count,
    /// entries. A server that predates piece maps sends only 0 or 1, so its entries are read without them.
    /// </summary>
    public const int ListReplyPrefix = 2 + 1 + 4;

    private const byte LastFrame = 1;
    private const byte EntriesCarryPieces = 2;

    public static void WriteListReplyPrefix(ref SpanWriter writer, bool isLast, int count, bool withPieces = false)
    {
        writer.WriteUInt16((ushort)StatusCode.Ok);
        writer.WriteByte((byte)((isLast ? LastFrame : 0) | (withPieces ? EntriesCarryPieces : 0)));
        writer.WriteUInt32((uint)count);
    }

    public static bool ReadListReply(ReadOnlySpan<byte> body, List<RemoteEntry> into, out StatusCode status, out string? message)
    {
        var reader = new SpanReader(body);
        status = ReadStatus(ref reader, out message);
        if (status != StatusCode.Ok)
        {
            return true;
        }

        byte flags = reader.ReadByte();
        bool isLast = (flags & LastFrame) != 0;
        bool withPieces = (flags & EntriesCarryPieces) != 0;
        uint count = reader.ReadUInt32();
        for (uint i = 0; i < count; i++)
        {
            into.Add(ReadEntry(ref reader, withPieces));
        }

        reader.EnsureEnd();
        return isLast;
    }

    /// <summary>
    /// Stat and hash requests: the path, then a u8 of <see cref="ListOptions"/> unless there are none (WithPieceMaps,
    /// and for a hash FastPieceHashes, mean anything).
    /// </summary>
    public static void WritePathRequest(ref SpanWriter writer, string path, ListOptions options)
    {
        writer.WriteString(path);
        if (options != ListOptions.None)
        {
            writer.WriteByte((byte)options);
        }
    }

    public static (string Path, ListOptions Options) ReadPathRequestWithOptions(ReadOnlySpan<byte> body)
    {
        var reader = new SpanReader(body);
        string path = reader.ReadString();
        var options = reader.Remaining > 0 ? (ListOptions)reader.ReadByte() : ListOptions.None;
        reader.EnsureEnd();
        return (path, options);
    }

    public static void WriteStatReply(ref SpanWriter writer, RemoteEntry entry, bool withPieces = false)
    {
        writer.WriteUInt16((ushort)StatusCode.Ok);
        WriteEntry(ref writer, entry, withPieces);
    }

    public static RemoteEntry? ReadStatReply(ReadOnlySpan<byte> body, out StatusCode status, out string? message) =>
        ReadStatReply(body, withPieces: false, out status, out message);

    public static RemoteEntry? ReadStatReply(ReadOnlySpan<byte> body, bool withPieces, out StatusCode status, out string? message)
    {
        var reader = new SpanReader(body);
        status = ReadStatus(ref reader, out message);
        if (status != StatusCode.Ok)
        {
            return null;
        }

        RemoteEntry entry = ReadEntry(ref reader, withPieces);
        reader.EnsureEnd();
        return entry;
    }

    public static void WriteReadReply(ref SpanWriter writer, RangeReply reply)
    {
        writer.WriteUInt16((ushort)StatusCode.Ok);
        writer.WriteInt64(reply.DataLength);
        writer.WriteInt64(reply.FileLength);
        writer.WriteInt64(reply.LastWriteTimeUtc.Ticks);
    }

    public static RangeReply? ReadReadReply(ReadOnlySpan<byte> body, out StatusCode status, out string? message)
    {
        var reader = new SpanReader(body);
        status = ReadStatus(ref reader, out message);
        if (status != StatusCode.Ok)
        {
            return null;
        }

        long dataLength = reader.ReadInt64();
        long fileLength = reader.ReadInt64();
        DateTime lastWrite = reader.ReadUtcTime();
        reader.EnsureEnd();
        if (dataLength < 0 || fileLength < 0 || dataLength > fileLength)
        {
            throw new ProtocolException("Read reply has an impossible length.");
        }

        return new RangeReply(dataLength, fileLength, lastWrite);
    }

    public static int HashReplySize(FileDigest digest, bool withPieces = false, PieceMap? held = null, bool namesAlgorithm = false) =>
        2 + DigestSize(digest, namesAlgorithm) + (withPieces ? 1 + (held is null ? 0 : PieceMap.ByteLength(held.Count)) : 0);

    /// <summary>
    /// Hash reply layout: status, then the digest (<see cref="WriteDigest"/>); then, when the request asked for piece
    /// maps, u8 partial (0: whole file) and for a partial copy the map of held pieces.
    /// </summary>
    public static void WriteHashReply(ref SpanWriter writer, FileDigest digest, bool withPieces = false, PieceMap? held = null, bool namesAlgorithm = false)
    {
        writer.WriteUInt16((ushort)StatusCode.Ok);
        WriteDigest(ref writer, digest, namesAlgorithm);
        if (withPieces)
        {
            writer.WriteByte(held is null ? (byte)0 : (byte)1);
            if (held is not null)
            {
                writer.WriteBytes(held.ToBytes());
            }
        }
    }

    public static FileDigest? ReadHashReply(ReadOnlySpan<byte> body, out StatusCode status, out string? message) =>
        ReadHashReply(body, withPieces: false, namesAlgorithm: false, out _, out status, out message);

    /// <summary>As above; <paramref name="held"/> is the piece map of a partial copy, null for a whole file.</summary>
    public static FileDigest? ReadHashReply(ReadOnlySpan<byte> body, bool withPieces, bool namesAlgorithm, out PieceMap? held, out StatusCode status, out string? message)
    {
        held = null;
        var reader = new SpanReader(body);
        status = ReadStatus(ref reader, out message);
        if (status != StatusCode.Ok)
        {
            return null;
        }

        FileDigest digest = ReadDigest(ref reader, namesAlgorithm);
        if (withPieces && reader.ReadByte() != 0)
        {
            if (digest.PieceCount == 0)
            {
                throw new ProtocolException("Hash reply has a piece map but no piece hashes.");
            }

            held = PieceMap.FromBytes(reader.ReadBytes(PieceMap.ByteLength(digest.PieceCount)), digest.PieceCount);
        }

        reader.EnsureEnd();
        return digest;
    }

    public static int DigestSize(FileDigest digest, bool namesAlgorithm) =>
        8 + 8 + ProtocolConstants.Sha256Length + 4 + 4 + (namesAlgorithm ? 1 : 0) + digest.PieceHashes.Length;

    /// <summary>
    /// Digest layout (hash replies and partial-download records): length, last write ticks, SHA-256, piece size,
    /// piece count, the piece algorithm when <paramref name="namesAlgorithm"/> (otherwise the pieces are SHA-256),
    /// piece hashes.
    /// </summary>
    public static void WriteDigest(ref SpanWriter writer, FileDigest digest, bool namesAlgorithm)
    {
        if (!namesAlgorithm && digest.PieceAlgorithm != PieceHashAlgorithm.Sha256 && digest.PieceCount > 0)
        {
            throw new InvalidOperationException("Only SHA-256 piece hashes can be written without naming their algorithm.");
        }

        writer.WriteInt64(digest.Length);
        writer.WriteInt64(digest.LastWriteTimeUtc.Ticks);
        writer.WriteBytes(digest.Sha256);
        writer.WriteUInt32((uint)digest.PieceSize);
        writer.WriteUInt32((uint)digest.PieceCount);
        if (namesAlgorithm)
        {
            writer.WriteByte((byte)digest.PieceAlgorithm);
        }

        writer.WriteBytes(digest.PieceHashes);
    }

    public static FileDigest ReadDigest(ref SpanReader reader, bool namesAlgorithm)
    {
        long length = reader.ReadInt64();
        DateTime lastWrite = reader.ReadUtcTime();
        byte[] sha256 = reader.ReadBytes(ProtocolConstants.Sha256Length);
        uint pieceSize = reader.ReadUInt32();
        uint pieceCount = reader.ReadUInt32();
        var algorithm = namesAlgorithm ? (PieceHashAlgorithm)reader.ReadByte() : PieceHashAlgorithm.Sha256;
        if (length < 0 || pieceSize == 0 || pieceSize > int.MaxValue
            || pieceCount > (uint)(reader.Remaining / ProtocolConstants.Sha256Length)
            || (pieceCount != 0 && pieceCount != FileDigest.PieceCountFor(length, (int)pieceSize)))
        {
            throw new ProtocolException("Digest has an impossible length or piece layout.");
        }

        if (!PieceHasher.IsKnown(algorithm))
        {
            throw new ProtocolException($"Digest names an unknown piece hash algorithm ({(byte)algorithm}).");
        }

        byte[] pieces = reader.ReadBytes((int)pieceCount * ProtocolConstants.Sha256Length);
        return new FileDigest(length, lastWrite, sha256, (int)pieceSize, pieces, algorithm);
    }
}

using FileShare.Protocol;

namespace FileShare;

/// <summary>
/// The small record beside a partial download (".&lt;name&gt;.partial.state"): which file it is a copy of (the
/// source's digest: length, last write time, whole-file SHA-256 and piece hashes), where it came from, and which pieces
/// have been verified so far. A later download resumes from it only when the source still has the same digest,
/// and a server whose share holds it offers the pieces it has.
/// </summary>
/// <remarks>
/// Pieces are recorded once verified, but their bytes may still sit in the page cache when a machine crashes;
/// a resuming download therefore hashes the pieces the record claims before trusting them.
/// </remarks>
public sealed record PartialState(string RemotePath, IReadOnlyList<string> Sources, FileDigest Digest, PieceMap Held)
{
    public const string Suffix = ".state";
    // Version 1 records predate named piece algorithms: their piece hashes are SHA-256.
    private const ushort FormatVersion = 2;
    private const int MaxSources = 1024;
    private static ReadOnlySpan<byte> Magic => "FSPS"u8;

    public static string PathFor(string partialPath) => partialPath + Suffix;

    /// <summary>The record, or null when there is none or it cannot be read (a torn or foreign file is as good as none).</summary>
    public static PartialState? TryRead(string statePath)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(statePath);
            if (!info.Exists || info.Length > ProtocolConstants.MaxFrameBody * 4L)
            {
                return null;
            }

            bytes = File.ReadAllBytes(statePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        try
        {
            return Parse(bytes);
        }
        catch (ProtocolException)
        {
            return null;
        }
    }

    private static PartialState Parse(ReadOnlySpan<byte> bytes)
    {
        var reader = new SpanReader(bytes);
        if (bytes.Length < Magic.Length || !bytes[..Magic.Length].SequenceEqual(Magic))
        {
            throw new ProtocolException("not a partial state record");
        }

        reader.ReadBytes(Magic.Length);
        ushort version = reader.ReadUInt16();
        if (version is not (1 or FormatVersion))
        {
            throw new ProtocolException("unknown state record version");
        }

        string remotePath = reader.ReadString();
        int sourceCount = reader.ReadUInt16();
        var sources = new List<string>(Math.Min(sourceCount, MaxSources));
        for (int i = 0; i < sourceCount; i++)
        {
            sources.Add(reader.ReadString(1024));
        }

        FileDigest digest = Messages.ReadDigest(ref reader, namesAlgorithm: version >= 2);
        if (digest.PieceCount == 0 && digest.Length > 0)
        {
            throw new ProtocolException("a partial download needs piece hashes");
        }

        PieceMap held = PieceMap.FromBytes(reader.ReadBytes(PieceMap.ByteLength(digest.PieceCount)), digest.PieceCount);
        reader.EnsureEnd();
        return new PartialState(remotePath, sources, digest, held);
    }

    /// <summary>Replaces the record atomically (write beside, then rename), so a reader never sees half of one.</summary>
    public void Write(string statePath)
    {
        IReadOnlyList<string> sources = Sources.Count > MaxSources ? Sources.Take(MaxSources).ToList() : Sources;
        int size = Magic.Length + 2 + SpanWriter.StringSize(RemotePath) + 2 + sources.Sum(s => SpanWriter.StringSize(s))
            + Messages.DigestSize(Digest, namesAlgorithm: true) + PieceMap.ByteLength(Held.Count);
        byte[] bytes = new byte[size];
        var writer = new SpanWriter(bytes);
        writer.WriteBytes(Magic);
        writer.WriteUInt16(FormatVersion);
        writer.WriteString(RemotePath);
        writer.WriteUInt16((ushort)sources.Count);
        foreach (string source in sources)
        {
            writer.WriteString(source);
        }

        Messages.WriteDigest(ref writer, Digest, namesAlgorithm: true);
        Held.WriteTo(bytes.AsSpan(writer.Position));
        string temporary = statePath + ".tmp";
        try
        {
            // A stale temporary, or a link planted under its name, goes first: a new file is never written through one.
            File.Delete(temporary);
            using (Microsoft.Win32.SafeHandles.SafeFileHandle file = File.OpenHandle(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                RandomAccess.Write(file, bytes, 0);
            }

            File.Move(temporary, statePath, overwrite: true);
        }
        catch
        {
            // A full disk leaves a short temporary record: never one beside the partial file to trip over later.
            PartialFile.TryDelete(temporary);
            throw;
        }
    }

    internal void TryWrite(string statePath)
    {
        try
        {
            Write(statePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Without a record the partial file is merely not resumable; the download itself goes on.
        }
    }

    /// <summary>
    /// Same content, same piece layout: a copy of this digest can continue this partial file. Piece hashes in another
    /// algorithm cannot be compared; the pieces a resume keeps are checked against the new digest anyway.
    /// </summary>
    public bool Describes(FileDigest digest) =>
        Digest.SameContentAs(digest) && (Digest.PieceAlgorithm != digest.PieceAlgorithm || Digest.PieceHashes.AsSpan().SequenceEqual(digest.PieceHashes));
}

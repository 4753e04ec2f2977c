namespace FileShare.Protocol;

/// <summary>One file as a server describes it: a '/'-separated path relative to the share root.</summary>
/// <remarks>
/// <see cref="Sha256"/> is present only when the listing asked for hashes (or the copy is partial: its record knows).
/// <see cref="Pieces"/> is null for a whole file; for a partial copy it says which pieces the server holds.
/// </remarks>
public sealed record RemoteEntry(string Name, long Length, DateTime LastWriteTimeUtc, EntryKind Kind = EntryKind.File, byte[]? Sha256 = null, PieceAvailability? Pieces = null);

/// <summary>The pieces of <see cref="PieceSize"/> bytes a partial copy holds.</summary>
public sealed record PieceAvailability(int PieceSize, PieceMap Held);

/// <summary>What the server promises before the raw bytes of a range follow its reply.</summary>
public readonly record struct RangeReply(long DataLength, long FileLength, DateTime LastWriteTimeUtc)
{
    /// <summary>
    /// Whether the file still holds the version of <paramref name="length"/> bytes written at
    /// <paramref name="lastWriteTimeUtc"/>, as far as a promise can tell: the same length and time, or a longer file. A
    /// longer one is a file still being written (a log): its first bytes are the version hashed, and every piece taken
    /// is checked against that digest, which catches any change within them.
    /// </summary>
    public bool StillHolds(long length, DateTime lastWriteTimeUtc) =>
        FileLength > length || (FileLength == length && LastWriteTimeUtc == lastWriteTimeUtc);
}

/// <summary>
/// The content hashes of one version of a file (identified by its length and last write time): SHA-256 of the
/// whole file, and the <see cref="PieceAlgorithm"/> hash of every <see cref="PieceSize"/> piece, concatenated in
/// <see cref="PieceHashes"/>.
/// </summary>
public sealed record FileDigest(long Length, DateTime LastWriteTimeUtc, byte[] Sha256, int PieceSize, byte[] PieceHashes, PieceHashAlgorithm PieceAlgorithm = PieceHashAlgorithm.Sha256)
{
    public int PieceCount => PieceHashes.Length / ProtocolConstants.Sha256Length;

    public static int PieceCountFor(long length, int pieceSize) => (int)((length + pieceSize - 1) / pieceSize);

    public ReadOnlySpan<byte> PieceHash(int index) => PieceHashes.AsSpan(index * ProtocolConstants.Sha256Length, ProtocolConstants.Sha256Length);

    /// <summary>Bytes in piece <paramref name="index"/>: the piece size, except for a shorter last piece.</summary>
    public long PieceLength(int index) => Math.Min(PieceSize, Length - ((long)index * PieceSize));

    /// <summary>The same content in the same piece layout, whatever the piece algorithm: pieces of one can stand for pieces of the other.</summary>
    public bool SameContentAs(FileDigest other) =>
        Length == other.Length && PieceSize == other.PieceSize && Sha256.AsSpan().SequenceEqual(other.Sha256);

    /// <summary>Upper-case hex, as Get-FileHash prints it.</summary>
    public string Sha256Hex => Convert.ToHexString(Sha256);
}

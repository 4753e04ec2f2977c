namespace FileShare.Protocol;

/// <summary>Numbers both ends agree on. See docs/protocol.md.</summary>
public static class ProtocolConstants
{
    /// <summary>
    /// Starts every FileShare handshake. The leading NUL can never begin a file name, which is how the server
    /// tells a FileShare client from a client of the original (seed) protocol on the same port.
    /// </summary>
    public static ReadOnlySpan<byte> Magic => "\0FSP"u8;

    public const ushort MinVersion = 1;
    public const ushort MaxVersion = 1;

    public const int HelloLength = 12;
    public const int FrameHeaderLength = 9;

    /// <summary>Largest frame body either end accepts; file bytes travel outside frames, so this only bounds control data.</summary>
    public const int MaxFrameBody = 1024 * 1024;

    /// <summary>Listing replies are split into frames of about this size so no reply needs a large buffer.</summary>
    public const int ListChunkTarget = 64 * 1024;

    public const int MaxPathBytes = 32 * 1024;

    /// <summary>Files are hashed in pieces of this size as well as whole, so any range can be checked on its own.</summary>
    public const int PieceSize = 4 * 1024 * 1024;

    public const int Sha256Length = 32;

    /// <summary>Length of each side's random challenge in the access-key exchange.</summary>
    public const int NonceLength = 32;

    /// <summary>Length of an HMAC-SHA-256 proof of the access key.</summary>
    public const int ProofLength = 32;
}

/// <summary>Feature bits of the hellos: the client asks, the server grants the subset it will use.</summary>
[Flags]
public enum HandshakeFeatures : uint
{
    None = 0,

    /// <summary>Both sides prove they hold the same access key (see docs/protocol.md, "Access key").</summary>
    AccessKey = 1,

    /// <summary>TLS starts right after the hellos, on the same connection (STARTTLS).</summary>
    Tls = 2,

    /// <summary>Digests on this connection name their piece hash algorithm, which may be BLAKE3 (see docs/protocol.md, "Hash").</summary>
    PieceAlgorithms = 4,

    /// <summary>
    /// The client can check XXH3-128 pieces, and a hash request may ask for them (<see cref="ListOptions.FastPieceHashes"/>);
    /// see docs/protocol.md, "Hash".
    /// </summary>
    FastPieceHashes = 8,
}

public enum FrameType : byte
{
    ListRequest = 0x10,
    StatRequest = 0x11,
    ReadRequest = 0x12,
    HashRequest = 0x13,

    ListReply = 0x90,
    StatReply = 0x91,
    ReadReply = 0x92,
    HashReply = 0x93,
    ErrorReply = 0xFF,
}

/// <summary>Status carried by every reply and by the server's hello.</summary>
public enum StatusCode : ushort
{
    Ok = 0,
    NotFound = 1,
    PathRefused = 2,
    Busy = 3,
    BadRequest = 4,
    ServerError = 5,
    UnsupportedVersion = 6,
    NotAFile = 7,
    RangeNotSatisfiable = 8,

    /// <summary>The server holds an access key and the client did not offer to prove it has one (handshake only).</summary>
    AuthenticationRequired = 9,

    /// <summary>The client's proof of the access key was wrong (handshake only).</summary>
    AuthenticationFailed = 10,

    /// <summary>The server speaks only TLS and the client did not ask for it (handshake only).</summary>
    TlsRequired = 11,

    /// <summary>A read asked a partial copy for bytes of pieces it does not hold (yet).</summary>
    PieceNotAvailable = 12,

    /// <summary>The file changed (other than by growing) while the server hashed it; asking again later may succeed.</summary>
    FileChanged = 13,

    /// <summary>The request broke a server limit (e.g. a name longer than the server accepts). Numbered apart from handshake codes.</summary>
    LimitExceeded = 20,

    /// <summary>Sent, when it still can be, before the server drops a connection slower than its minimum data rate.</summary>
    TooSlow = 21,
}

[Flags]
public enum ListOptions : byte
{
    None = 0,
    Recursive = 1,

    /// <summary>Each entry carries the file's SHA-256 (the server hashes files it has not hashed yet).</summary>
    WithHashes = 2,

    /// <summary>
    /// Each entry says which pieces the server holds, and partial copies (downloads in progress, seeded ranges) are
    /// listed too; on a stat request the same bit asks for the same. Servers that predate it ignore it in a list
    /// (their reply says so: see <see cref="Messages.ReadListReply"/>) and refuse it in a stat.
    /// </summary>
    WithPieceMaps = 4,

    /// <summary>
    /// Hash requests only, on a connection that granted <see cref="HandshakeFeatures.FastPieceHashes"/>: XXH3-128
    /// pieces will do, because every byte comes from the server that answers (one source, nothing to forge).
    /// </summary>
    FastPieceHashes = 8,
}

public enum EntryKind : byte
{
    File = 0,
    Directory = 1,
}

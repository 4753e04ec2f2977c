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
}

public enum FrameType : byte
{
    ListRequest = 0x10,
    StatRequest = 0x11,
    ReadRequest = 0x12,

    ListReply = 0x90,
    StatReply = 0x91,
    ReadReply = 0x92,
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
}

[Flags]
public enum ListOptions : byte
{
    None = 0,
    Recursive = 1,
}

public enum EntryKind : byte
{
    File = 0,
    Directory = 1,
}

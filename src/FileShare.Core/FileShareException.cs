namespace FileShare;

/// <summary>What went wrong, in terms a caller can act on; the PowerShell layer maps each to a stable ErrorId.</summary>
public enum FileShareErrorKind
{
    ConnectionFailed,
    Timeout,
    PortInUse,

    /// <summary>The server could not listen on an address: not one of this machine's, or not allowed (a privileged port).</summary>
    BindFailed,
    NotFound,
    PathRefused,
    NotAFile,
    Busy,
    BadRequest,
    ServerError,
    ProtocolError,
    UnsupportedVersion,
    NotSupportedBySeedServer,
    IncompleteTransfer,
    DestinationExists,
    DestinationConflict,
    InvalidPath,
    LocalWriteFailed,
    ContentMismatch,
    RemoteFileChanged,

    /// <summary>The server needs an access key and none was given.</summary>
    AuthenticationRequired,

    /// <summary>The keys differ, or the server could not prove it holds the key.</summary>
    AuthenticationFailed,

    /// <summary>The server speaks only TLS and the client did not ask for it.</summary>
    TlsRequired,

    /// <summary>TLS could not be set up: the certificate was refused, or the server offers no TLS.</summary>
    TlsFailed,

    /// <summary>The server refused a request that broke one of its limits (e.g. a name too long).</summary>
    LimitExceeded,

    /// <summary>A listing grew past the client's cap on entries or bytes; the server is broken or hostile.</summary>
    ListingTooLarge,

    /// <summary>No source holds some piece of the file (or a partial copy was asked for a piece it lacks).</summary>
    PiecesUnavailable,

    /// <summary>Another download is writing the same destination file (it holds the partial file).</summary>
    DestinationInUse,

    /// <summary>The destination is a read-only file, which is replaced only when asked to (-Force).</summary>
    DestinationReadOnly,
}

/// <summary>A failure that names where it happened: the server's host:port and, when there is one, the file.</summary>
public sealed class FileShareException : Exception
{
    /// <param name="message">Spelled out where it quotes a control or bidirectional character (a name from a server or a file list).</param>
    public FileShareException(FileShareErrorKind kind, string message, string? endpoint = null, string? path = null, Exception? inner = null)
        : base(SharePath.Printable(message), inner)
    {
        Kind = kind;
        Endpoint = endpoint;
        RemotePath = path;
    }

    public FileShareErrorKind Kind { get; }

    /// <summary>host:port of the server involved, if any.</summary>
    public string? Endpoint { get; }

    /// <summary>The file or folder involved, as the request named it.</summary>
    public string? RemotePath { get; }

    /// <summary>No connection to the server could be made at all (refused, unreachable, no such host, connect timeout).</summary>
    public bool NotReached { get; init; }
}

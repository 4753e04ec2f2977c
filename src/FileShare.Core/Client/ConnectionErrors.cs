using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Client;

/// <summary>
/// How the client words what went wrong with a server, in the handshake and in every request alike: a refusal the
/// server sent, or a failure of the transport, as a FileShareException naming host:port (and the path, if any).
/// </summary>
internal static class ConnectionErrors
{
    /// <summary>Throws the FileShareException for a refusal the server sent; <see cref="StatusCode.Ok"/> passes.</summary>
    public static void ThrowIfFailed(StatusCode status, string? message, string endpoint, string? path)
    {
        if (status == StatusCode.Ok)
        {
            return;
        }

        (FileShareErrorKind kind, string what) = status switch
        {
            StatusCode.NotFound => (FileShareErrorKind.NotFound, "not found"),
            StatusCode.PathRefused => (FileShareErrorKind.PathRefused, "path refused"),
            StatusCode.NotAFile => (FileShareErrorKind.NotAFile, "not a file"),
            StatusCode.Busy => (FileShareErrorKind.Busy, "server busy"),
            StatusCode.UnsupportedVersion => (FileShareErrorKind.UnsupportedVersion, "unsupported protocol version"),
            StatusCode.ServerError => (FileShareErrorKind.ServerError, "server error"),
            StatusCode.LimitExceeded => (FileShareErrorKind.LimitExceeded, "server limit exceeded"),
            StatusCode.PieceNotAvailable => (FileShareErrorKind.PiecesUnavailable, "piece not held"),
            // The client asks only for bytes within the length it was promised: past the end now, the file shrank.
            StatusCode.RangeNotSatisfiable or StatusCode.FileChanged => (FileShareErrorKind.RemoteFileChanged, "changed on the server"),
            _ => (FileShareErrorKind.BadRequest, "bad request"),
        };
        string subject = path switch
        {
            null => endpoint,
            "" => $"The shared folder of {endpoint}",
            _ => $"'{path}' on {endpoint}",
        };
        // The server says which kind it wanted ("not a folder" to a listing, "not a file" to a read): that alone is clear.
        string detail = kind == FileShareErrorKind.NotAFile && !string.IsNullOrEmpty(message) ? message : $"{what} ({message})";
        throw new FileShareException(kind, $"{subject}: {detail}.", endpoint, path);
    }

    /// <summary>Only a refusal the server sent as a status reply leaves the stream in step for the next request.</summary>
    public static bool LeavesStreamInStep(Exception e) =>
        e is FileShareException { Kind: FileShareErrorKind.NotFound or FileShareErrorKind.PathRefused or FileShareErrorKind.NotAFile or FileShareErrorKind.BadRequest or FileShareErrorKind.ServerError or FileShareErrorKind.LimitExceeded or FileShareErrorKind.PiecesUnavailable
            or FileShareErrorKind.RemoteFileChanged };

    /// <summary>
    /// Turns a transport failure into a FileShareException naming the server; null for what passes through as it is:
    /// a FileShareException, the caller's own cancellation, anything unforeseen.
    /// </summary>
    public static FileShareException? Translate(Exception e, CancellationToken cancellationToken, string endpoint, TimeSpan readTimeout, string? path)
    {
        string subject = path is null ? endpoint : $"'{path}' from {endpoint}";
        return e switch
        {
            FileShareException => null,
            OperationCanceledException when cancellationToken.IsCancellationRequested => null,
            OperationCanceledException => new FileShareException(FileShareErrorKind.Timeout, $"No answer for {subject} in time (read timeout {readTimeout.TotalSeconds:0.#} s).", endpoint, path, e),
            ProtocolException => new FileShareException(FileShareErrorKind.ProtocolError, $"{endpoint} broke the protocol: {e.Message}.", endpoint, path, e),
            EndOfStreamException => new FileShareException(FileShareErrorKind.IncompleteTransfer, $"{endpoint} closed the connection in the middle of a reply for {subject}.", endpoint, path, e),
            IOException or SocketException or ObjectDisposedException => new FileShareException(FileShareErrorKind.ConnectionFailed, $"Connection to {endpoint} failed while fetching {subject}: {e.Message}", endpoint, path, e),
            _ => null,
        };
    }
}

using System.Management.Automation;

namespace FileShare.PowerShell;

/// <summary>The stable ErrorId and category of every FileShare failure. Scripts may match on these ids.</summary>
public static class ErrorRecords
{
    public static ErrorRecord From(FileShareException exception, object? target)
    {
        (string id, ErrorCategory category) = Classify(exception.Kind);
        return new ErrorRecord(exception, id, category, target ?? exception.RemotePath ?? exception.Endpoint);
    }

    /// <summary>
    /// An error of the cmdlets' own, carrying an exception a script's <c>catch [type]</c> would expect: an
    /// ArgumentException for a bad argument, an ItemNotFoundException for something not there, an IOException for a
    /// local file that could not be read or written.
    /// </summary>
    public static ErrorRecord Create(string id, ErrorCategory category, string message, object? target, Exception? inner = null)
    {
        string text = SharePath.Printable(message);
        Exception exception = category switch
        {
            ErrorCategory.InvalidArgument => new PSArgumentException(text, inner!),
            ErrorCategory.ObjectNotFound => new ItemNotFoundException(text, inner!),
            ErrorCategory.ReadError or ErrorCategory.WriteError when inner is IOException or UnauthorizedAccessException => new IOException(text, inner),
            _ => new InvalidOperationException(text, inner),
        };
        return new ErrorRecord(exception, id, category, target);
    }

    /// <summary>Why one file of Get-RemoteFile failed: the server's or protocol's error, or a local write that failed.</summary>
    public static ErrorRecord ForDownload(FileShare.Client.FileTransfer transfer, Exception error) => error switch
    {
        FileShareException e => NamingTheFile(From(e, transfer.Name), e, transfer.Name),
        IOException or UnauthorizedAccessException => Create("DestinationWriteFailed", ErrorCategory.WriteError,
            $"Could not write '{transfer.Destination}' for '{transfer.Name}' from {transfer.Endpoint}: {error.Message}", transfer.Destination, error),
        _ => Create("DownloadFailed", ErrorCategory.NotSpecified, $"Downloading '{transfer.Name}' from {transfer.Endpoint} failed: {error.Message}", transfer.Name, error),
    };

    /// <summary>A failure of the connection (refused, timed out) does not say which file it cost; in a batch of thousands the record must.</summary>
    private static ErrorRecord NamingTheFile(ErrorRecord record, FileShareException e, string name)
    {
        string printable = SharePath.Printable(name);
        if (!e.Message.Contains(printable, StringComparison.Ordinal))
        {
            record.ErrorDetails = new ErrorDetails($"'{printable}' was not downloaded: {e.Message}");
        }

        return record;
    }

    public static (string Id, ErrorCategory Category) Classify(FileShareErrorKind kind) => kind switch
    {
        FileShareErrorKind.ConnectionFailed => ("ServerUnreachable", ErrorCategory.ConnectionError),
        FileShareErrorKind.Timeout => ("ServerTimeout", ErrorCategory.OperationTimeout),
        FileShareErrorKind.PortInUse => ("PortInUse", ErrorCategory.ResourceBusy),
        FileShareErrorKind.BindFailed => ("ServerStartFailed", ErrorCategory.OpenError),
        FileShareErrorKind.NotFound => ("RemoteFileNotFound", ErrorCategory.ObjectNotFound),
        FileShareErrorKind.PathRefused => ("RemotePathRefused", ErrorCategory.PermissionDenied),
        FileShareErrorKind.NotAFile => ("RemotePathNotAFile", ErrorCategory.InvalidArgument),
        FileShareErrorKind.Busy => ("ServerBusy", ErrorCategory.ResourceBusy),
        FileShareErrorKind.BadRequest => ("BadRequest", ErrorCategory.InvalidArgument),
        FileShareErrorKind.ServerError => ("ServerError", ErrorCategory.ReadError),
        FileShareErrorKind.ProtocolError => ("ProtocolError", ErrorCategory.ProtocolError),
        FileShareErrorKind.UnsupportedVersion => ("UnsupportedProtocolVersion", ErrorCategory.ProtocolError),
        FileShareErrorKind.NotSupportedBySeedServer => ("SeedServerCannotList", ErrorCategory.NotImplemented),
        FileShareErrorKind.IncompleteTransfer => ("IncompleteTransfer", ErrorCategory.ConnectionError),
        FileShareErrorKind.DestinationExists => ("DestinationExists", ErrorCategory.ResourceExists),
        FileShareErrorKind.DestinationReadOnly => ("DestinationReadOnly", ErrorCategory.PermissionDenied),
        FileShareErrorKind.DestinationConflict => ("DestinationConflict", ErrorCategory.ResourceExists),
        FileShareErrorKind.DestinationInUse => ("DestinationInUse", ErrorCategory.ResourceBusy),
        FileShareErrorKind.InvalidPath => ("InvalidRemotePath", ErrorCategory.InvalidData),
        FileShareErrorKind.LocalWriteFailed => ("DestinationWriteFailed", ErrorCategory.WriteError),
        FileShareErrorKind.ContentMismatch => ("ContentMismatch", ErrorCategory.InvalidData),
        FileShareErrorKind.RemoteFileChanged => ("RemoteFileChanged", ErrorCategory.InvalidData),
        FileShareErrorKind.AuthenticationRequired => ("AuthenticationRequired", ErrorCategory.AuthenticationError),
        FileShareErrorKind.AuthenticationFailed => ("AuthenticationFailed", ErrorCategory.AuthenticationError),
        FileShareErrorKind.TlsRequired => ("TlsRequired", ErrorCategory.SecurityError),
        FileShareErrorKind.TlsFailed => ("TlsHandshakeFailed", ErrorCategory.SecurityError),
        FileShareErrorKind.LimitExceeded => ("ServerLimitExceeded", ErrorCategory.LimitsExceeded),
        FileShareErrorKind.ListingTooLarge => ("ListingTooLarge", ErrorCategory.LimitsExceeded),
        FileShareErrorKind.PiecesUnavailable => ("PiecesUnavailable", ErrorCategory.ResourceUnavailable),
        _ => ("FileShareError", ErrorCategory.NotSpecified),
    };
}

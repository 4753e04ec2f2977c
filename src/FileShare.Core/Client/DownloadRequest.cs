namespace FileShare.Client;

/// <summary>What to download, from where, and how to tell the caller what happened on the way.</summary>
public sealed class DownloadRequest
{
    public required string RemotePath { get; init; }

    public required string Destination { get; init; }

    /// <summary>Servers that may offer the file; the first one's content is the one wanted.</summary>
    public required IReadOnlyList<DownloadSource> Sources { get; init; }

    public bool Overwrite { get; init; } = true;

    /// <summary>Continue from a partial file whose state record describes the same source content.</summary>
    public bool Resume { get; init; } = true;

    public TransferProgress? Progress { get; init; }

    /// <summary>Explanations (why a download resumes or starts over); any thread.</summary>
    public Action<string>? Notice { get; init; }

    /// <summary>A source that was not used (different content) or was dropped while the others went on; any thread.</summary>
    public Action<FileShareException>? SourceProblem { get; init; }

    /// <summary>
    /// The download that follows this one (on the same worker of a batch): when both come from the one server, its
    /// requests go out on this one's connection once this one's answers are in, so the server works on it while this
    /// one's bytes are written here.
    /// </summary>
    public DownloadRequest? Next { get; set; }

    private FileShareConnection? _requestsAhead;

    /// <summary>A connection on which this download's digest and whole file were asked for ahead of time; it owns it from now on.</summary>
    internal void HoldRequestsAhead(FileShareConnection connection) => Volatile.Write(ref _requestsAhead, connection);

    internal FileShareConnection? TakeRequestsAhead() => Interlocked.Exchange(ref _requestsAhead, null);

    /// <summary>For a download that will not run after all: closes the connection holding its requests, if any.</summary>
    public void AbandonRequestsAhead() => TakeRequestsAhead()?.Dispose();
}

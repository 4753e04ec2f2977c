using System.Diagnostics;

namespace FileShare.Client;

/// <summary>
/// One file of a <see cref="DownloadBatch"/>: the name as asked for, where it goes, every server that offers it (the
/// first one's content wins), and counters anyone may read while it runs.
/// </summary>
public sealed class FileTransfer(string name, string destination)
{
    private readonly List<DownloadSource> _sources = [];
    private long _startedAt;
    private volatile bool _finished;

    public string Name { get; } = name;

    public string Destination { get; } = destination;

    public IReadOnlyList<DownloadSource> Sources => _sources;

    /// <summary>"host:port", or "host:port and 2 more" for a download drawing on several servers.</summary>
    public string Endpoint => _sources.Count == 1 ? _sources[0].Endpoint : $"{_sources[0].Endpoint} and {_sources.Count - 1} more";

    public TransferProgress Progress { get; } = new();

    public bool Started => Volatile.Read(ref _startedAt) != 0;

    /// <summary>How long it has been running; zero before it starts.</summary>
    public TimeSpan Elapsed => Started ? Stopwatch.GetElapsedTime(Volatile.Read(ref _startedAt)) : TimeSpan.Zero;

    /// <summary>Succeeded, failed or cancelled.</summary>
    public bool Finished => _finished;

    internal void AddSource(DownloadSource source)
    {
        if (!_sources.Contains(source))
        {
            _sources.Add(source);
        }
    }

    internal void MarkStarted() => Volatile.Write(ref _startedAt, Stopwatch.GetTimestamp());

    internal void MarkFinished() => _finished = true;
}

/// <summary>
/// Many files from one request: names become one download per destination path, however many servers offered the
/// name (copies of one file on several servers become one download that draws on all of them), and run at most
/// <c>throttleLimit</c> at a time. Outcomes go to callbacks, from any thread; cancellation ends the batch quietly.
/// Destination paths compare as the platform's file systems usually do (case-sensitive on Linux only).
/// </summary>
public sealed class DownloadBatch(FileDownloader downloader, string destinationRoot, IReadOnlyList<DownloadSource> extraSources, int throttleLimit)
{
    private readonly Dictionary<string, FileTransfer> _byDestination = new(OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase);
    private readonly List<FileTransfer> _transfers = [];

    /// <summary>Every file of the batch, in the order its name was first asked for.</summary>
    public IReadOnlyList<FileTransfer> Transfers => _transfers;

    public bool Overwrite { get; init; } = true;

    public bool Resume { get; init; } = true;

    public required Action<FileTransfer, DownloadResult> Completed { get; init; }

    /// <summary>A download that failed (anything but cancellation): a FileShareException, or a local I/O error.</summary>
    public required Action<FileTransfer, Exception> Failed { get; init; }

    public Action<FileTransfer, string>? Notice { get; init; }

    public Action<FileTransfer, FileShareException>? SourceProblem { get; init; }

    /// <summary>Adds a name offered by <paramref name="source"/> (and by every extra source); a name that would land outside the destination throws InvalidPath.</summary>
    public void Add(string name, DownloadSource source)
    {
        string destination = SharePath.ResolveDestination(destinationRoot, name);
        if (!_byDestination.TryGetValue(destination, out FileTransfer? transfer))
        {
            transfer = new FileTransfer(name, destination);
            _byDestination[destination] = transfer;
            _transfers.Add(transfer);
        }

        transfer.AddSource(source);
        foreach (DownloadSource extra in extraSources)
        {
            transfer.AddSource(extra);
        }
    }

    /// <summary>Runs every download; ends when all have finished, each having reported through a callback unless cancelled.</summary>
    /// <remarks>
    /// At most <c>throttleLimit</c> workers, each taking the next file in order as it finishes one. A worker knows its
    /// next file before the current one ends, so the downloader may ask for it on the same connection ahead of time.
    /// </remarks>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        List<string> missingFolders = FoldersToCreate();
        int taken = -1;
        Func<int> takeIndex = () => Interlocked.Increment(ref taken);
        // Every worker gets its first file before any takes a second one ahead: otherwise the first worker would take
        // the file meant for the second, and two large files with -ThrottleLimit 2 would arrive one after the other.
        (FileTransfer, DownloadRequest)?[] firsts = Enumerable.Range(0, Math.Min(throttleLimit, _transfers.Count))
            .Select(_ => Take(takeIndex()))
            .ToArray();
        Task[] workers = firsts.Select(first => WorkAsync(first, takeIndex, cancellationToken)).ToArray();
        try
        {
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        finally
        {
            RemoveIfEmpty(missingFolders);
        }
    }

    /// <summary>Folders under the destination that downloads will create, deepest first.</summary>
    private List<string> FoldersToCreate()
    {
        var folders = new HashSet<string>(_byDestination.Comparer);
        int rootLength = destinationRoot.TrimEnd(Path.DirectorySeparatorChar).Length;
        foreach (FileTransfer transfer in _transfers)
        {
            for (string? folder = Path.GetDirectoryName(transfer.Destination);
                 folder is not null && folder.Length > rootLength && !folders.Contains(folder) && !Directory.Exists(folder);
                 folder = Path.GetDirectoryName(folder))
            {
                folders.Add(folder);
            }
        }

        return folders.OrderByDescending(folder => folder.Length).ToList();
    }

    /// <summary>
    /// A folder made for files that all failed would be left empty: removed, after every download has ended (so one
    /// cannot vanish under another). A folder holding anything, a kept partial download included, stays.
    /// </summary>
    private static void RemoveIfEmpty(List<string> folders)
    {
        foreach (string folder in folders)
        {
            try
            {
                if (Directory.Exists(folder) && !Directory.EnumerateFileSystemEntries(folder).Any())
                {
                    Directory.Delete(folder);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Someone else is using it: theirs to keep.
            }
        }
    }

    private async Task WorkAsync((FileTransfer Transfer, DownloadRequest Request)? current, Func<int> takeIndex, CancellationToken cancellationToken)
    {
        try
        {
            while (current is { } work && !cancellationToken.IsCancellationRequested)
            {
                (FileTransfer Transfer, DownloadRequest Request)? following = Take(takeIndex());
                work.Request.Next = following?.Request;
                // Moved on before running, so whatever ends this loop leaves the following file to the cleanup below.
                current = following;
                await RunAsync(work.Transfer, work.Request, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            // Cancelled: whatever this worker has not started ends too, with anything asked for it ahead of time closed.
            while (current is { } left)
            {
                left.Request.AbandonRequestsAhead();
                left.Transfer.MarkFinished();
                current = Take(takeIndex());
            }
        }
    }

    private (FileTransfer, DownloadRequest)? Take(int index)
    {
        if (index >= _transfers.Count)
        {
            return null;
        }

        FileTransfer transfer = _transfers[index];
        return (transfer, new DownloadRequest
        {
            RemotePath = transfer.Name,
            Destination = transfer.Destination,
            Sources = transfer.Sources,
            Overwrite = Overwrite,
            Resume = Resume,
            Progress = transfer.Progress,
            Notice = Notice is null ? null : message => Notice(transfer, message),
            SourceProblem = SourceProblem is null ? null : problem => SourceProblem(transfer, problem),
        });
    }

    private async Task RunAsync(FileTransfer transfer, DownloadRequest request, CancellationToken cancellationToken)
    {
        try
        {
            transfer.MarkStarted();
            DownloadResult result = await downloader.DownloadAsync(request, cancellationToken).ConfigureAwait(false);
            Completed(transfer, result);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Cancelled with the batch: the caller knows; a cancelled download keeps its verified pieces for later.
        }
        catch (Exception e)
        {
            // Anything else, a cancellation the batch did not ask for included, is this file's failure and is reported.
            Failed(transfer, e);
        }
        finally
        {
            // A download that failed before taking the connection its requests were sent ahead on leaves it here.
            request.AbandonRequestsAhead();
            transfer.MarkFinished();
        }
    }
}

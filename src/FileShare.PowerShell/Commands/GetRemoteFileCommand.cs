using System.Management.Automation;
using FileShare.Client;
using FileShare.PowerShell.Completion;

namespace FileShare.PowerShell.Commands;

/// <summary>
/// Downloads files from FileShare servers, several at once, each into a hidden partial file that is renamed into
/// place only when complete. Binds Name, ComputerName and Port by property name from Get-RemoteFileList; copies of
/// one name from several servers become one download that draws pieces from all of them.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RemoteFile", DefaultParameterSetName = DownloadSet)]
[OutputType(typeof(FileInfo))]
public sealed class GetRemoteFileCommand : FileShareClientCmdlet
{
    private const string DownloadSet = "Download";
    private const string CleanSet = "CleanPartial";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DownloadSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true, ParameterSetName = DownloadSet)]
    [ValidateNotNullOrEmpty]
    public string ComputerName { get; set; } = "localhost";

    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = DownloadSet)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 5000;

    /// <summary>More servers ("host:port") that offer the same files; pieces come from all of them at once.</summary>
    [Parameter(ParameterSetName = DownloadSet)]
    [ValidateNotNullOrEmpty]
    public string[] Source { get; set; } = [];

    [Parameter(Position = 2)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "localStorage";

    [Parameter(ParameterSetName = DownloadSet)]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = 4;

    [Parameter(ParameterSetName = DownloadSet)]
    public SwitchParameter NoClobber { get; set; }

    [Parameter(ParameterSetName = DownloadSet)]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Download even when the destination already holds a file with the server's SHA-256.</summary>
    [Parameter(ParameterSetName = DownloadSet)]
    public SwitchParameter Force { get; set; }

    /// <summary>Continue an interrupted download from its verified pieces (on by default; -Resume:$false starts over).</summary>
    [Parameter(ParameterSetName = DownloadSet)]
    public SwitchParameter Resume { get; set; } = true;

    /// <summary>Instead of downloading, remove partial downloads under -Destination whose source no longer offers them.</summary>
    [Parameter(Mandatory = true, ParameterSetName = CleanSet)]
    public SwitchParameter CleanPartial { get; set; }

    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 30;

    [Parameter(ParameterSetName = DownloadSet)]
    public WireProtocol Protocol { get; set; } = WireProtocol.Auto;

    private readonly Dictionary<string, (string Name, List<DownloadSource> Sources)> _wanted = new(OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase);
    private readonly List<Transfer> _transfers = [];
    private readonly List<DownloadSource> _extraSources = [];
    private ConnectionPool? _pool;
    private FileDownloader? _downloader;
    private SemaphoreSlim? _throttle;
    private DownloadProgressReporter? _progress;
    private string _destinationRoot = "";

    protected override void BeginProcessing()
    {
        _destinationRoot = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Destination);
        Directory.CreateDirectory(_destinationRoot);
        _pool = new ConnectionPool(ClientOptions(TimeoutSec, Protocol));
        _downloader = new FileDownloader(_pool) { SkipIdentical = !Force };
        _throttle = new SemaphoreSlim(ThrottleLimit);
        foreach (string text in Source)
        {
            DownloadSource source = DownloadSource.TryParse(text)
                ?? throw new PSArgumentException($"-Source '{text}' is not host:port (write an IPv6 address as [address]:port).", nameof(Source));
            _extraSources.Add(source);
        }

        if (DownloadProgressReporter.ShouldReport(this))
        {
            _progress = new DownloadProgressReporter(this);
        }
    }

    protected override void ProcessRecord()
    {
        if (CleanPartial)
        {
            return;
        }

        foreach (string name in Name)
        {
            Collect(name);
        }
    }

    protected override void EndProcessing()
    {
        if (CleanPartial)
        {
            Await(new PartialCleaner(_pool!, message => Post(() => WriteVerbose(message))).CleanAsync(_destinationRoot, Cancellation));
            return;
        }

        // Every copy of a name is known only once the input has ended, so downloads start here.
        foreach ((string destination, (string name, List<DownloadSource> sources)) in _wanted)
        {
            Start(name, destination, sources);
        }

        Task all = Task.WhenAll(_transfers.Select(t => t.Completion));
        PumpUntil(all, _progress is null ? null : () => _progress.Report(_transfers));
        _progress?.Complete(_transfers);
    }

    protected override void StopProcessing()
    {
        base.StopProcessing();
        Task[] running;
        lock (_transfers)
        {
            running = _transfers.Select(t => t.Completion).ToArray();
        }

        // Let every cancelled download record its verified pieces before the pipeline (or the process) goes away.
        Task.WhenAll(running).ContinueWith(static _ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(10));
    }

    private void Collect(string name)
    {
        string destination;
        try
        {
            destination = SharePath.ResolveDestination(_destinationRoot, name);
        }
        catch (FileShareException e)
        {
            WriteFileShareError(e, name);
            return;
        }

        if (!_wanted.TryGetValue(destination, out var wanted))
        {
            wanted = (name, []);
            _wanted[destination] = wanted;
        }

        foreach (DownloadSource source in _extraSources.Prepend(new DownloadSource(ComputerName, Port)))
        {
            if (!wanted.Sources.Contains(source))
            {
                wanted.Sources.Add(source);
            }
        }
    }

    private void Start(string name, string destination, List<DownloadSource> sources)
    {
        string endpoint = sources.Count == 1 ? sources[0].Endpoint : $"{sources[0].Endpoint} and {sources.Count - 1} more";
        var transfer = new Transfer(name, endpoint, new TransferProgress());
        var request = new DownloadRequest
        {
            RemotePath = name,
            Destination = destination,
            Sources = sources,
            Overwrite = !NoClobber,
            Resume = Resume,
            Progress = transfer.Progress,
            Notice = message => Post(() => WriteVerbose(message)),
            SourceProblem = problem => Post(() =>
            {
                if (problem.Kind == FileShareErrorKind.DestinationConflict)
                {
                    WriteFileShareError(problem, name);
                }
                else
                {
                    WriteWarning($"{problem.Message} The download went on without {problem.Endpoint}.");
                }
            }),
        };
        transfer.Completion = RunAsync(transfer, request);
        lock (_transfers)
        {
            _transfers.Add(transfer);
        }
    }

    private async Task RunAsync(Transfer transfer, DownloadRequest request)
    {
        await _throttle!.WaitAsync(Cancellation).ConfigureAwait(false);
        try
        {
            transfer.Start();
            DownloadResult result = await _downloader!.DownloadAsync(request, Cancellation).ConfigureAwait(false);
            Post(() => Completed(result));
        }
        catch (FileShareException e)
        {
            Post(() => WriteFileShareError(e, transfer.Name));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Post(() => WriteError(ErrorRecords.Create("DestinationWriteFailed", ErrorCategory.WriteError,
                $"Could not write '{request.Destination}' for '{transfer.Name}' from {transfer.Endpoint}: {e.Message}", request.Destination, e)));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Post(() => WriteError(ErrorRecords.Create("DownloadFailed", ErrorCategory.NotSpecified,
                $"Downloading '{transfer.Name}' from {transfer.Endpoint} failed: {e.Message}", transfer.Name, e)));
        }
        finally
        {
            transfer.Finished = true;
            _throttle.Release();
        }
    }

    private void Completed(DownloadResult result)
    {
        if (result.Skipped)
        {
            WriteVerbose($"Skipped '{result.Path}': it already has the SHA-256 of the file on {result.Endpoint} ({result.Sha256}). Use -Force to download it anyway.");
            WritePassThru(result);
            return;
        }

        double seconds = Math.Max(result.Duration.TotalSeconds, 1e-6);
        long fetched = result.Length - result.BytesResumed;
        string sources = result.Sources.Count > 1 ? " from " + string.Join(", ", result.Sources.Select(s => $"{s.Endpoint} ({Units.Bytes(s.Bytes)})")) : $" from {result.Endpoint}";
        string resumed = result.BytesResumed > 0 ? $", resumed: {Units.Bytes(result.BytesResumed)} were already here" : "";
        WriteVerbose($"Downloaded '{result.Path}' ({result.Length:N0} bytes){sources} in {seconds:0.###} s ({fetched / seconds / 1048576:0.#} MiB/s, {result.Protocol} protocol{(result.Sha256 is null ? ", not verified" : ", SHA-256 " + result.Sha256 + " verified")}{resumed}).");
        WritePassThru(result);
    }

    private void WritePassThru(DownloadResult result)
    {
        if (!PassThru)
        {
            return;
        }

        // Through the provider, so the object carries PSPath and formats like Get-ChildItem's output.
        foreach (PSObject file in InvokeProvider.Item.Get([result.Path], force: true, literalPath: true))
        {
            file.Properties.Add(new PSNoteProperty("Sha256", result.Sha256));
            file.Properties.Add(new PSNoteProperty("Sources", result.Sources.Select(s => new PSObject(new { s.Endpoint, s.Bytes })).ToArray()));
            file.Properties.Add(new PSNoteProperty("BytesResumed", result.BytesResumed));
            WriteObject(file);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _pool?.Dispose();
            _throttle?.Dispose();
        }

        base.Dispose(disposing);
    }
}

using System.Management.Automation;
using FileShare.Client;
using FileShare.PowerShell.Completion;

namespace FileShare.PowerShell.Commands;

/// <summary>
/// Downloads files from FileShare servers, several at once, each into a hidden partial file that is renamed into
/// place only when complete. Binds Name, ComputerName and Port by property name from Get-RemoteFileList; copies of
/// one name from several servers become one download that draws pieces from all of them.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RemoteFile", DefaultParameterSetName = DownloadSet, SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo), ParameterSetName = [DownloadSet])]
[OutputType(typeof(string), ParameterSetName = [CleanSet])]
public sealed class GetRemoteFileCommand : FileShareClientCmdlet
{
    private const string DownloadSet = "Download";
    private const string CleanSet = "CleanPartial";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = DownloadSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true, ParameterSetName = DownloadSet)]
    [ValidateNotNullOrEmpty]
    [ComputerName]
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

    /// <summary>Writes each downloaded file, or with -CleanPartial each removed partial file.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Download even when the destination already holds a file with the server's SHA-256; with -CleanPartial, also remove partial-looking files without a state record.</summary>
    [Parameter]
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

    /// <summary>Caps the bytes per second the whole call receives, all its downloads and sources together.</summary>
    [Parameter(ParameterSetName = DownloadSet)]
    [ValidateRange(TransferRateLimit.MinimumBytesPerSecond, long.MaxValue)]
    public long? MaxBytesPerSecond { get; set; }

    private ConnectionPool? _pool;
    private readonly List<DownloadSource> _extraSources = [];
    private DownloadBatch? _batch;
    private Task? _running;
    private DownloadProgressReporter? _progress;
    private string _destinationRoot = "";

    protected override void BeginProcessing()
    {
        // Every argument is checked before anything on the disk changes.
        foreach (string text in Source)
        {
            string? problem = DownloadSource.ProblemWith(text);
            if (problem is not null || DownloadSource.TryParse(text) is not { } source)
            {
                ThrowTerminatingError(ErrorRecords.Create("InvalidSource", ErrorCategory.InvalidArgument,
                    $"-Source {problem ?? $"'{text}' is not host:port (write an IPv6 address as [address]:port)."}", text));
                return;
            }

            _extraSources.Add(source);
        }

        _pool = new ConnectionPool(ClientOptions(TimeoutSec, Protocol, ThrottleLimit, MaxBytesPerSecond));
        _destinationRoot = FileSystemPath(Destination, nameof(Destination), "InvalidDestination");

        // A file in the way fails before any input is taken, -WhatIf or not, as the real run would. -CleanPartial makes
        // no folder; one that is not there is its own error, at the end.
        if (!CleanPartial && File.Exists(_destinationRoot))
        {
            MakeDestinationFolder();
        }

        _batch = new DownloadBatch(new FileDownloader(_pool) { SkipIdentical = !Force, ReplaceReadOnly = Force }, _destinationRoot, _extraSources, ThrottleLimit)
        {
            Overwrite = !NoClobber,
            Resume = Resume,
            // Thousands of small files: no hop to the pipeline thread per file when nothing would be written.
            Completed = PassThru || VerboseWanted ? (_, result) => Post(() => Completed(result)) : static (_, _) => { },
            Failed = (transfer, error) => Post(() => WriteError(ErrorRecords.ForDownload(transfer, error))),
            Notice = (_, message) => Post(() => WriteVerbose(message)),
            SourceProblem = (transfer, problem) => Post(() =>
            {
                if (problem.Kind == FileShareErrorKind.DestinationConflict)
                {
                    WriteFileShareError(problem, transfer.Name);
                }
                else
                {
                    string said = problem.Message.EndsWith('.') ? problem.Message : problem.Message + ".";
                    WriteWarning($"{said} The download went on without {problem.Endpoint}.");
                }
            }),
        };
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

        // -Source alone names every server: the default localhost:5000 is asked only when nothing says otherwise.
        DownloadSource source = _extraSources.Count > 0 && !MyInvocation.BoundParameters.ContainsKey(nameof(ComputerName)) && !MyInvocation.BoundParameters.ContainsKey(nameof(Port))
            ? _extraSources[0]
            : DownloadSource.FromComputerName(ComputerName, Port);
        foreach (string name in Name)
        {
            if (!ShouldProcess($"'{name}' from {source.Endpoint} into '{_destinationRoot}'", "Download"))
            {
                continue;
            }

            try
            {
                _batch!.Add(name, source);
            }
            catch (FileShareException e)
            {
                WriteFileShareError(e, name);
            }
        }
    }

    protected override void EndProcessing()
    {
        if (CleanPartial && !Directory.Exists(_destinationRoot))
        {
            // As Remove-Item or Get-ChildItem would: a mistyped folder in a CI script must not pass as "nothing to clean".
            WriteError(ErrorRecords.Create("DestinationNotFound", ErrorCategory.ObjectNotFound,
                $"'{_destinationRoot}' is not a folder; there are no partial downloads to clean there.", _destinationRoot));
            return;
        }

        if (CleanPartial)
        {
            var cleaner = new PartialCleaner(_pool!, message => Post(() => WriteVerbose(message)), MayRemoveAsync) { RemoveUnrecorded = Force };
            IReadOnlyList<string> removed = Await(cleaner.CleanAsync(_destinationRoot, Cancellation));
            if (PassThru)
            {
                // The files are gone, so their paths rather than FileInfo objects.
                WriteObject(removed, enumerateCollection: true);
            }

            return;
        }

        // Nothing to download (empty input, or -WhatIf) makes no folder.
        if (_batch!.Transfers.Count == 0
            || (!Directory.Exists(_destinationRoot) && !ShouldProcess(_destinationRoot, "Create the destination folder")))
        {
            return;
        }

        MakeDestinationFolder();

        // Every copy of a name is known only once the input has ended, so downloads start here.
        Volatile.Write(ref _running, _batch.RunAsync(Cancellation));
        PumpUntil(_running!, _progress is null ? null : () => _progress.Report(_batch.Transfers));
        _progress?.Complete(_batch.Transfers);
    }

    protected override void StopProcessing()
    {
        base.StopProcessing();

        // Let every cancelled download record its verified pieces before the pipeline (or the process) goes away.
        Volatile.Read(ref _running)?.ContinueWith(static _ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(10));
    }

    private void MakeDestinationFolder()
    {
        try
        {
            Folder.Create(_destinationRoot);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No download could land anywhere: one terminating error, not one per file.
            ThrowTerminatingError(ErrorRecords.Create("DestinationWriteFailed", ErrorCategory.WriteError,
                $"Could not use '{_destinationRoot}' as the destination folder: {e.Message}", _destinationRoot, e));
        }
    }

    /// <summary>-WhatIf and -Confirm for each partial file -CleanPartial would remove, asked on the pipeline thread.</summary>
    private Task<bool> MayRemoveAsync(string partial, string why)
    {
        var answer = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() => answer.SetResult(ShouldProcess(partial, $"Remove the partial download ({why})")));
        return answer.Task.WaitAsync(Cancellation);
    }

    private void Completed(DownloadResult result)
    {
        WriteVerbose(DownloadMessages.Describe(result));
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
            file.Properties.Add(new PSNoteProperty("Sources", result.Sources.ToArray()));
            file.Properties.Add(new PSNoteProperty("BytesResumed", result.BytesResumed));
            WriteObject(file);
        }
    }

    protected override void Dispose(bool disposing)
    {
        // The base cancels the work first, so no download is still using a connection when the pool closes them.
        base.Dispose(disposing);
        if (disposing)
        {
            _pool?.Dispose();
        }
    }
}

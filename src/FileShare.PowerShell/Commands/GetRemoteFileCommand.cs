using System.Management.Automation;
using FileShare.Client;
using FileShare.PowerShell.Completion;

namespace FileShare.PowerShell.Commands;

/// <summary>
/// Downloads files from FileShare servers, several at once, each into a hidden partial file that is renamed into
/// place only when complete. Binds Name, ComputerName and Port by property name from Get-RemoteFileList.
/// </summary>
[Cmdlet(VerbsCommon.Get, "RemoteFile")]
[OutputType(typeof(FileInfo))]
public sealed class GetRemoteFileCommand : FileShareClientCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter(Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string ComputerName { get; set; } = "localhost";

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 5000;

    [Parameter(Position = 2)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "localStorage";

    [Parameter]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = 4;

    [Parameter]
    public SwitchParameter NoClobber { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Download even when the destination already holds a file with the server's SHA-256.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 30;

    [Parameter]
    public WireProtocol Protocol { get; set; } = WireProtocol.Auto;

    private readonly Dictionary<string, string> _claimed = new(OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase);
    private readonly List<Transfer> _transfers = [];
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
        if (DownloadProgressReporter.ShouldReport(this))
        {
            _progress = new DownloadProgressReporter(this);
        }
    }

    protected override void ProcessRecord()
    {
        foreach (string name in Name)
        {
            Schedule(name);
        }

        DrainPosted();
    }

    protected override void EndProcessing()
    {
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

        // Let every cancelled download delete its partial file before the pipeline (or the process) goes away.
        Task.WhenAll(running).ContinueWith(static _ => { }, TaskScheduler.Default).Wait(TimeSpan.FromSeconds(10));
    }

    private void Schedule(string name)
    {
        string endpoint = $"{ComputerName}:{Port}";
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

        if (_claimed.TryGetValue(destination, out string? claimedBy))
        {
            if (claimedBy != endpoint)
            {
                WriteFileShareError(new FileShareException(FileShareErrorKind.DestinationConflict,
                    $"'{name}' from {endpoint} would overwrite the file of the same name from {claimedBy} in this download; fetch one of them into another -Destination.",
                    endpoint, name), name);
            }
            else
            {
                WriteVerbose($"'{name}' from {endpoint} is already being downloaded.");
            }

            return;
        }

        _claimed[destination] = endpoint;
        var transfer = new Transfer(name, endpoint, new TransferProgress());
        transfer.Completion = RunAsync(transfer, ComputerName, Port, destination);
        lock (_transfers)
        {
            _transfers.Add(transfer);
        }
    }

    private async Task RunAsync(Transfer transfer, string host, int port, string destination)
    {
        await _throttle!.WaitAsync(Cancellation).ConfigureAwait(false);
        try
        {
            transfer.Started = true;
            DownloadResult result = await _downloader!.DownloadAsync(host, port, transfer.Name, destination, overwrite: !NoClobber, transfer.Progress, Cancellation).ConfigureAwait(false);
            Post(() => Completed(result));
        }
        catch (FileShareException e)
        {
            Post(() => WriteFileShareError(e, transfer.Name));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Post(() => WriteError(ErrorRecords.Create("DestinationWriteFailed", ErrorCategory.WriteError,
                $"Could not write '{destination}' for '{transfer.Name}' from {transfer.Endpoint}: {e.Message}", destination, e)));
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
            WritePassThru(result.Path);
            return;
        }

        double seconds = Math.Max(result.Duration.TotalSeconds, 1e-6);
        WriteVerbose($"Downloaded '{result.Path}' ({result.Length:N0} bytes) from {result.Endpoint} in {seconds:0.###} s ({result.Length / seconds / 1048576:0.#} MiB/s, {result.Protocol} protocol{(result.Sha256 is null ? ", not verified" : ", SHA-256 " + result.Sha256 + " verified")}).");
        WritePassThru(result.Path);
    }

    private void WritePassThru(string path)
    {
        if (PassThru)
        {
            // Through the provider, so the object carries PSPath and formats like Get-ChildItem's output.
            WriteObject(InvokeProvider.Item.Get([path], force: true, literalPath: true), enumerateCollection: true);
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

using System.Management.Automation;
using FileShare.PowerShell.Completion;
using FileShare.PowerShell.Jobs;

namespace FileShare.PowerShell.Commands;

/// <summary>Stops servers of this session: the port is freed at once, transfers in flight get -Timeout seconds to finish.</summary>
[Cmdlet(VerbsLifecycle.Stop, "FileShareServer", SupportsShouldProcess = true, DefaultParameterSetName = JobSet)]
[OutputType(typeof(FileShareServerJob))]
public sealed class StopFileShareServerCommand : FileShareCmdlet
{
    public const string PortSet = "Port";
    public const string JobSet = "Job";
    public const string AllSet = "All";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = PortSet)]
    [PortRange]
    [ArgumentCompleter(typeof(ServerPortCompleter))]
    [ValidateRange(0, 65535)]
    public int[] Port { get; set; } = [];

    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = JobSet)]
    public Job[] InputObject { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = AllSet)]
    public SwitchParameter All { get; set; }

    /// <summary>Seconds that transfers in flight may take to finish before they are cut.</summary>
    [Parameter]
    [Alias("TimeoutSec")]
    [ValidateRange(0, 3600)]
    public int Timeout { get; set; } = 10;

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private readonly List<FileShareServerJob> _toStop = [];

    protected override void ProcessRecord()
    {
        // A server still draining may be stopped again: a shorter -Timeout cuts its transfers sooner.
        List<FileShareServerJob> running = JobRepository.Jobs.OfType<FileShareServerJob>()
            .Where(job => job.JobStateInfo.State is JobState.Running or JobState.Stopping)
            .ToList();
        switch (ParameterSetName)
        {
            case AllSet:
                _toStop.AddRange(running);
                break;
            case JobSet:
                foreach (Job job in InputObject)
                {
                    if (job is FileShareServerJob server)
                    {
                        _toStop.Add(server);
                    }
                    else
                    {
                        WriteVerbose($"Skipping job {job.Id} '{job.Name}': it is not a FileShare server.");
                    }
                }

                break;
            default:
                foreach (int port in Port)
                {
                    // Every server on the port: one per -BindAddress may share it.
                    int before = _toStop.Count;
                    _toStop.AddRange(running.Where(job => job.Port == port));
                    if (_toStop.Count == before)
                    {
                        WriteError(ErrorRecords.Create("ServerNotFound", ErrorCategory.ObjectNotFound, $"No FileShare server of this session is running on port {port}.", port));
                    }
                }

                break;
        }
    }

    protected override void EndProcessing()
    {
        List<FileShareServerJob> chosen = _toStop.Distinct()
            .Where(job => ShouldProcess($"FileShare server on port {job.Port} sharing '{job.Root}'", "Stop"))
            .ToList();
        Task stopping = Task.WhenAll(chosen.Select(job => job.StopAsync(TimeSpan.FromSeconds(Timeout))));

        // Ctrl+C ends the wait, not the stop: the ports are already free and the drain finishes in the background.
        PumpUntil(Task.WhenAny(stopping, Task.Delay(-1, Cancellation)));
        if (!stopping.IsCompleted)
        {
            throw new PipelineStoppedException();
        }

        stopping.GetAwaiter().GetResult();
        foreach (FileShareServerJob job in chosen)
        {
            if (job.JobStateInfo.State == JobState.Failed && job.Error.LastOrDefault() is { } failure)
            {
                WriteError(failure);
                continue;
            }

            WriteVerbose($"Stopped the server on port {job.Port}; the port is free.");
            if (PassThru)
            {
                WriteObject(job);
            }
        }
    }
}

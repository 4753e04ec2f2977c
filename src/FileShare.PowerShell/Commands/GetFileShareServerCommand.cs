using System.Management.Automation;
using FileShare.PowerShell.Completion;
using FileShare.PowerShell.Jobs;

namespace FileShare.PowerShell.Commands;

/// <summary>Shows this session's servers with their figures at this moment: connections, requests, bytes, uptime.</summary>
[Cmdlet(VerbsCommon.Get, "FileShareServer")]
[OutputType(typeof(FileShareServerStatus))]
public sealed class GetFileShareServerCommand : PSCmdlet
{
    [Parameter(Position = 0)]
    [PortRange]
    [ValidateRange(0, 65535)]
    [ArgumentCompleter(typeof(ServerPortCompleter))]
    public int[]? Port { get; set; }

    /// <summary>Include servers that have stopped but whose jobs have not been removed.</summary>
    [Parameter]
    public SwitchParameter IncludeStopped { get; set; }

    protected override void EndProcessing()
    {
        IEnumerable<FileShareServerJob> servers = JobRepository.Jobs.OfType<FileShareServerJob>()
            .Where(job => IncludeStopped || job.JobStateInfo.State == JobState.Running)
            .Where(job => Port is null || Port.Contains(job.Port))
            .OrderBy(job => job.Port);
        foreach (FileShareServerJob job in servers)
        {
            WriteObject(new FileShareServerStatus(job));
        }
    }
}

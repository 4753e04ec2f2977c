using FileShare.PowerShell.Jobs;

namespace FileShare.PowerShell;

/// <summary>A snapshot of one server's figures, taken when Get-FileShareServer ran.</summary>
public sealed class FileShareServerStatus
{
    internal FileShareServerStatus(FileShareServerJob job)
    {
        JobId = job.Id;
        State = job.JobStateInfo.State;
        Port = job.Port;
        Root = job.Root;
        BindAddress = job.BindAddress;
        RequiresAccessKey = job.RequiresAccessKey;
        CertificateThumbprint = job.CertificateThumbprint;
        ActiveConnections = job.ActiveConnections;
        TotalConnections = job.TotalConnections;
        Requests = job.Requests;
        BytesSent = job.BytesSent;
        StartTime = job.PSBeginTime ?? DateTime.Now;
        Uptime = (job.PSEndTime ?? DateTime.Now) - StartTime;
        BytesPerSecond = Uptime.TotalSeconds > 0 ? (long)(BytesSent / Uptime.TotalSeconds) : 0;
    }

    public int JobId { get; }

    /// <summary>The job's state, as Get-Job shows it; compares with 'Running' as text too.</summary>
    public System.Management.Automation.JobState State { get; }

    public int Port { get; }

    public string Root { get; }

    public string BindAddress { get; }

    public bool RequiresAccessKey { get; }

    /// <summary>The SHA-256 thumbprint clients pin with -CertificateThumbprint; null when the server does not use TLS.</summary>
    public string? CertificateThumbprint { get; }

    public long ActiveConnections { get; }

    public long TotalConnections { get; }

    public long Requests { get; }

    public long BytesSent { get; }

    /// <summary>Local time.</summary>
    public DateTime StartTime { get; }

    public TimeSpan Uptime { get; }

    /// <summary>Average over the uptime.</summary>
    public long BytesPerSecond { get; }
}

using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>One requested file, shared between its download task and the pipeline thread that reports on it.</summary>
internal sealed class Transfer(string name, string endpoint, TransferProgress progress)
{
    public string Name { get; } = name;

    public string Endpoint { get; } = endpoint;

    public TransferProgress Progress { get; } = progress;

    public Task Completion { get; set; } = Task.CompletedTask;

    public volatile bool Started;

    public volatile bool Finished;

    public int ActivityId { get; set; }

    public bool ProgressShown { get; set; }
}

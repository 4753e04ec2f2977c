using System.Diagnostics;
using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>One requested file, shared between its download task and the pipeline thread that reports on it.</summary>
internal sealed class Transfer(string name, string endpoint, TransferProgress progress)
{
    private long _startedAt;

    public string Name { get; } = name;

    public string Endpoint { get; } = endpoint;

    public TransferProgress Progress { get; } = progress;

    public Task Completion { get; set; } = Task.CompletedTask;

    public bool Started => Volatile.Read(ref _startedAt) != 0;

    /// <summary>How long it has been running; zero before it starts.</summary>
    public TimeSpan Running => Started ? Stopwatch.GetElapsedTime(Volatile.Read(ref _startedAt)) : TimeSpan.Zero;

    public volatile bool Finished;

    public int ActivityId { get; set; }

    public bool ProgressShown { get; set; }

    public void Start() => Volatile.Write(ref _startedAt, Stopwatch.GetTimestamp());
}

using System.Collections.Concurrent;
using System.Management.Automation.Runspaces;

namespace FileShare.PowerShell.Jobs;

/// <summary>
/// Ends a session's servers with the session: when its runspace closes, or the process exits, every server job it
/// started is stopped so no port stays bound by a listener nobody can reach.
/// </summary>
internal static class SessionServers
{
    private static readonly ConcurrentDictionary<FileShareServerJob, Runspace?> Jobs = new();
    private static readonly ConcurrentDictionary<Runspace, bool> Watched = new();

    static SessionServers()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAll(_ => true);
    }

    /// <summary>Running servers started from <paramref name="runspace"/>, for completers, which get no JobRepository.</summary>
    public static IEnumerable<FileShareServerJob> RunningIn(Runspace? runspace) =>
        Jobs.Where(pair => ReferenceEquals(pair.Value, runspace) && pair.Key.JobStateInfo.State == System.Management.Automation.JobState.Running)
            .Select(pair => pair.Key);

    public static void Track(FileShareServerJob job)
    {
        Runspace? runspace = Runspace.DefaultRunspace;
        Jobs[job] = runspace;
        job.StateChanged += (_, e) =>
        {
            if (e.JobStateInfo.State is System.Management.Automation.JobState.Stopped or System.Management.Automation.JobState.Failed)
            {
                Jobs.TryRemove(job, out Runspace? _);
            }
        };

        if (runspace is not null && Watched.TryAdd(runspace, true))
        {
            runspace.StateChanged += (sender, e) =>
            {
                if (e.RunspaceStateInfo.State is RunspaceState.Closing or RunspaceState.Closed or RunspaceState.Broken)
                {
                    Watched.TryRemove(runspace, out _);
                    StopAll(owner => ReferenceEquals(owner, runspace));
                }
            };
        }
    }

    private static void StopAll(Func<Runspace?, bool> belongs)
    {
        Task[] stopping = Jobs.Where(pair => belongs(pair.Value)).Select(pair => pair.Key.StopAsync(TimeSpan.FromSeconds(2))).ToArray();
        Task.WaitAll(stopping, TimeSpan.FromSeconds(5));
    }
}

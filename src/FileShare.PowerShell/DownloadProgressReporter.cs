using System.Diagnostics;
using System.Management.Automation;
using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>
/// Turns the counters of running downloads into progress records, written from the pipeline thread a few times a
/// second, never from the transfers themselves: one overall bar (files done, bytes, rate, time left) and, under it,
/// a bar for each file that has been running longer than <see cref="FileBarAfter"/>. Files that finish sooner (most
/// small files) never get a bar of their own, so thousands of them cost a handful of records, not two each. A
/// command that ends before the first tick writes no progress at all: a bar drawn and cleared at once would only
/// flicker, and drawing it is what a quick command would spend its time on.
/// </summary>
internal sealed class DownloadProgressReporter(Cmdlet cmdlet)
{
    /// <summary>A file bar shown for less than this would only flicker.</summary>
    internal static readonly TimeSpan FileBarAfter = TimeSpan.FromMilliseconds(500);

    private const int OverallActivityId = 1;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<FileTransfer, int> _activityIds = [];
    private readonly Dictionary<FileTransfer, RecentRate> _fileRates = [];
    private readonly RecentRate _overallRate = new();
    private readonly HashSet<FileTransfer> _shown = [];
    private bool _overallShown;

    /// <summary>No progress when the user silenced it, or when nobody watches a console (CI logs, redirected output).</summary>
    public static bool ShouldReport(PSCmdlet cmdlet)
    {
        if (cmdlet.GetVariableValue("ProgressPreference") is ActionPreference.SilentlyContinue or ActionPreference.Ignore)
        {
            return false;
        }

        return cmdlet.Host.Name != "ConsoleHost" || (Environment.UserInteractive && !Console.IsOutputRedirected);
    }

    public void Report(IReadOnlyList<FileTransfer> transfers)
    {
        long received = 0;
        long known = 0;
        int done = 0;
        foreach (FileTransfer transfer in transfers)
        {
            long total = transfer.Progress.TotalBytes;
            long bytes = transfer.Progress.BytesReceived;
            received += bytes;
            known += Math.Max(total, bytes);
            if (transfer.Finished)
            {
                done++;
                CompleteFile(transfer);
                continue;
            }

            TimeSpan running = transfer.Elapsed;
            if (running >= FileBarAfter && (total >= 0 || bytes > 0))
            {
                if (!_activityIds.TryGetValue(transfer, out int activityId))
                {
                    activityId = OverallActivityId + 1 + _activityIds.Count;
                    _activityIds[transfer] = activityId;
                }

                _shown.Add(transfer);
                if (!_fileRates.TryGetValue(transfer, out RecentRate? fileRate))
                {
                    _fileRates[transfer] = fileRate = new RecentRate();
                }

                double rate = fileRate.Sample(_clock.Elapsed, bytes - transfer.Progress.BytesResumed);
                ProgressRecord file = Record(activityId, $"{transfer.Name} from {transfer.Endpoint}", bytes, total, rate, OverallActivityId);
                file.StatusDescription += PerSource(transfer.Progress);
                cmdlet.WriteProgress(file);
            }
        }

        ProgressRecord overall = Record(OverallActivityId, "Get-RemoteFile", received, known, _overallRate.Sample(_clock.Elapsed, received), -1);
        // Before the first byte a server may be hashing a large file for the first time: "0 B of 0 B" looked like a hang.
        overall.StatusDescription = $"{done} of {transfers.Count} files; " + (received == 0 ? "waiting for the servers to answer" : overall.StatusDescription);
        cmdlet.WriteProgress(overall);
        _overallShown = true;
    }

    /// <summary>"; a:5000 12 MiB, b:5000 30 MiB (dropped)" for a download drawing on several sources, else nothing.</summary>
    internal static string PerSource(TransferProgress progress)
    {
        IReadOnlyList<TransferProgress> sources = progress.Sources;
        if (sources.Count < 2)
        {
            return "";
        }

        return "; " + string.Join(", ", sources.Select(s => $"{s.Endpoint} {Units.Bytes(s.BytesReceived)}{(s.Dropped ? " (dropped)" : "")}"));
    }

    /// <summary>Ends every bar that was shown; the overall Completed record, if any bar was, is the last one.</summary>
    public void Complete(IReadOnlyList<FileTransfer> transfers)
    {
        foreach (FileTransfer transfer in transfers)
        {
            CompleteFile(transfer);
        }

        if (!_overallShown)
        {
            return;
        }

        cmdlet.WriteProgress(new ProgressRecord(OverallActivityId, "Get-RemoteFile", "Done") { RecordType = ProgressRecordType.Completed });
    }

    private void CompleteFile(FileTransfer transfer)
    {
        _fileRates.Remove(transfer);
        if (_shown.Remove(transfer))
        {
            cmdlet.WriteProgress(new ProgressRecord(_activityIds[transfer], transfer.Name, "Done") { RecordType = ProgressRecordType.Completed, ParentActivityId = OverallActivityId });
        }
    }

    /// <param name="rate">Bytes per second that came over the network lately (resumed bytes left out); 0 when none did.</param>
    private static ProgressRecord Record(int id, string activity, long bytes, long total, double rate, int parent)
    {
        string pace = rate > 0 ? $" at {Units.Bytes((long)rate)}/s" : bytes == 0 ? ", waiting for the server" : "";
        var record = new ProgressRecord(id, activity, total >= 0 ? $"{Units.Bytes(bytes)} of {Units.Bytes(total)}{pace}" : $"{Units.Bytes(bytes)}{pace}")
        {
            ParentActivityId = parent,
        };
        if (total > 0)
        {
            record.PercentComplete = (int)Math.Min(100, bytes * 100 / total);
            if (rate > 0)
            {
                record.SecondsRemaining = (int)Math.Min(int.MaxValue, (total - bytes) / rate);
            }
        }

        return record;
    }
}

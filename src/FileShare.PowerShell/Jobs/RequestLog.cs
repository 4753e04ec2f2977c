using System.Management.Automation;
using FileShare.Server;

namespace FileShare.PowerShell.Jobs;

/// <summary>
/// A server job's request log, which Receive-Job reads: attached to the server before it starts, so no request is
/// missed, and bounded, so a long-running server's memory is too.
/// </summary>
internal sealed class RequestLog(int maxRecords)
{
    private readonly object _lock = new();

    public PSDataCollection<PSObject> Records { get; } = new();

    public void Append(RequestLogRecord record)
    {
        lock (_lock)
        {
            try
            {
                // The oldest goes first. One at a time, though that moves every other record: the collection has no
                // ring, and taking out a batch (read all, add back the newest) measured 5-20 times slower still.
                while (Records.Count >= maxRecords)
                {
                    Records.RemoveAt(0);
                }

                Records.Add(PSObject.AsPSObject(record));
            }
            catch (InvalidOperationException)
            {
                // The job has been stopped and its output closed while the last request finished.
            }
        }
    }
}

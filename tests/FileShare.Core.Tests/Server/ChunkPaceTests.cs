using System.Diagnostics;
using FileShare.Server;

namespace FileShare.Tests.Server;

public sealed class ChunkPaceTests
{
    /// <summary>
    /// The deadline's check runs on a timer thread and asks the system where the client stands (a getsockopt, slowed
    /// here to what a pre-empted thread could take). A range ending meanwhile must wait for it: otherwise the check
    /// went on against a sender already disposed, and its Cancel on the disposed deadline crashed the process.
    /// </summary>
    [Fact]
    public void Stop_waits_for_a_running_check_so_a_disposed_pace_is_never_touched()
    {
        using var inCheck = new ManualResetEventSlim();
        long checkEnded = 0;
        int calls = 0;
        long acknowledged = 0;
        var pace = new ChunkPace(TimeSpan.FromMilliseconds(20), default, () =>
        {
            if (Interlocked.Increment(ref calls) > 1)
            {
                inCheck.Set();
                Thread.Sleep(300);
                Volatile.Write(ref checkEnded, Stopwatch.GetTimestamp());
            }

            // The client keeps acknowledging, so each check re-arms the deadline rather than cutting the range.
            return Interlocked.Add(ref acknowledged, 1000);
        });

        long stopped;
        using (pace.Start(CancellationToken.None))
        {
            pace.BeginWithoutRate();
            pace.NoteAcknowledged(); // as a write that has to wait does
            Assert.True(inCheck.Wait(TimeSpan.FromSeconds(10)), "the timer's check never ran");
            pace.Stop();
            stopped = Stopwatch.GetTimestamp();
        }

        pace.Dispose();
        Assert.True(Volatile.Read(ref checkEnded) is > 0 and var ended && ended <= stopped, "Stop returned while the timer's check was still running");
    }
}

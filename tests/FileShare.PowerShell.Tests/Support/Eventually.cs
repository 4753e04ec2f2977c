using System.Diagnostics;

namespace FileShare.PowerShell.Tests.Support;

public static class Eventually
{
    /// <summary>
    /// Polls <paramref name="condition"/> every few milliseconds; fails the test after <paramref name="timeout"/> (default 10 s),
    /// saying what <paramref name="seen"/> last described, if given.
    /// </summary>
    public static void True(Func<bool> condition, string what, TimeSpan? timeout = null, Func<string>? seen = null)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan limit = timeout ?? TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (clock.Elapsed > limit)
            {
                Assert.Fail($"Timed out after {limit.TotalSeconds:0.#} s waiting until {what}." + (seen is null ? "" : $" Last seen: {seen()}"));
            }

            Thread.Sleep(5);
        }
    }

    /// <summary>Runs <paramref name="action"/> on another thread and fails the test if it does not return within <paramref name="timeout"/>.</summary>
    public static TimeSpan Within(Action action, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        Task task = Task.Run(action);
        if (!task.Wait(timeout))
        {
            Assert.Fail($"{what} did not return within {timeout.TotalSeconds:0.#} s.");
        }

        return clock.Elapsed;
    }
}

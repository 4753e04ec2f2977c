using System.Diagnostics;

namespace FileShare.Tests.Support;

public static class Eventually
{
    /// <summary>Polls until <paramref name="condition"/> holds; fails the test after <paramref name="timeout"/> (default 10 s).</summary>
    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan limit = timeout ?? TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (clock.Elapsed > limit)
            {
                Assert.Fail($"Timed out after {limit.TotalSeconds:0.#} s waiting until {what}.");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Awaits a task that must finish within <paramref name="timeout"/>, so a hang fails the test instead of stalling it.</summary>
    public static async Task<T> WithinAsync<T>(Task<T> task, TimeSpan timeout, string what)
    {
        if (await Task.WhenAny(task, Task.Delay(timeout)) != task)
        {
            Assert.Fail($"{what} did not finish within {timeout.TotalSeconds:0.#} s.");
        }

        return await task;
    }

    public static async Task WithinAsync(Task task, TimeSpan timeout, string what)
    {
        if (await Task.WhenAny(task, Task.Delay(timeout)) != task)
        {
            Assert.Fail($"{what} did not finish within {timeout.TotalSeconds:0.#} s.");
        }

        await task;
    }
}

namespace FileShare.Client;

/// <summary>
/// Bytes per second over the last few seconds, from samples of a growing byte count: the rate, and the time left from
/// it, that a progress bar shows. An average since the start would count the wait for a server's first hash against
/// the transfer (the bar said 429 KiB/s and 9,755 s left for a file that took 25 s), and would trail any change of pace
/// for as long as the transfer had run.
/// </summary>
public sealed class RecentRate(TimeSpan window)
{
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromSeconds(5);

    // A few ticks a second over the window: a handful of samples, oldest first.
    private readonly List<(TimeSpan At, long Bytes)> _samples = [];

    public RecentRate()
        : this(DefaultWindow)
    {
    }

    /// <summary>Adds the count seen at <paramref name="at"/> (times only grow) and returns bytes per second since the window's start; 0 before anything arrived.</summary>
    public double Sample(TimeSpan at, long bytes)
    {
        if (_samples.Count > 0 && _samples[0].Bytes == bytes)
        {
            // Nothing has arrived since the first sample: the rate counts from the last moment before bytes began.
            _samples.Clear();
        }

        _samples.Add((at, bytes));
        // The oldest kept is the last one at or before the window's start, so the rate spans the whole window once it can.
        while (_samples.Count > 2 && _samples[1].At <= at - window)
        {
            _samples.RemoveAt(0);
        }

        (TimeSpan firstAt, long firstBytes) = _samples[0];
        double seconds = (at - firstAt).TotalSeconds;
        return seconds > 0 ? Math.Max(0, bytes - firstBytes) / seconds : 0;
    }
}

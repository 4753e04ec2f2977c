using FileShare.Client;

namespace FileShare.Tests.Client;

public sealed class RecentRateTests
{
    private const long MB = 1_000_000;

    [Fact]
    public void A_wait_before_the_first_byte_does_not_count_against_the_rate()
    {
        // The operator's case: nine seconds of a server's first hash, then 1 MB/s.
        var rate = new RecentRate();
        double last = Ticks(rate, from: 0, to: 9, bytesAt: _ => 0);
        Assert.Equal(0, last);

        last = Ticks(rate, from: 9.25, to: 12, bytesAt: t => (long)((t - 9) * MB));

        Assert.InRange(last, 0.95 * MB, 1.05 * MB);
    }

    [Fact]
    public void The_rate_follows_a_change_of_pace_within_the_window()
    {
        var rate = new RecentRate(TimeSpan.FromSeconds(5));
        Ticks(rate, from: 0, to: 60, bytesAt: t => (long)(t * MB));

        // After a minute at 1 MB/s, six seconds at 10 MB/s: an average since the start would still say 1.8 MB/s.
        double last = Ticks(rate, from: 60.25, to: 66, bytesAt: t => (long)((60 * MB) + ((t - 60) * 10 * MB)));

        Assert.InRange(last, 9.5 * MB, 10.5 * MB);
    }

    [Fact]
    public void A_stall_brings_the_rate_down_to_nothing_once_it_fills_the_window()
    {
        var rate = new RecentRate(TimeSpan.FromSeconds(5));
        Ticks(rate, from: 0, to: 10, bytesAt: t => (long)(t * MB));

        double halfway = Ticks(rate, from: 10.25, to: 12.5, bytesAt: _ => 10 * MB);
        double stalled = Ticks(rate, from: 12.75, to: 16, bytesAt: _ => 10 * MB);

        Assert.InRange(halfway, 0.3 * MB, 0.7 * MB);
        Assert.Equal(0, stalled);
    }

    /// <summary>Samples four times a second from <paramref name="from"/> to <paramref name="to"/> seconds; returns the last rate.</summary>
    private static double Ticks(RecentRate rate, double from, double to, Func<double, long> bytesAt)
    {
        double last = 0;
        for (double t = from; t <= to + 1e-9; t += 0.25)
        {
            last = rate.Sample(TimeSpan.FromSeconds(t), bytesAt(t));
        }

        return last;
    }
}

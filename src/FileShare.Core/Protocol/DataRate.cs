using System.Diagnostics;

namespace FileShare.Protocol;

/// <summary>
/// A floor on how fast a peer must move bytes, kept as a token bucket: the peer may run up to <see cref="Grace"/>
/// ahead of or behind the floor, never more, so a fast start buys no licence to trickle later.
/// </summary>
public readonly record struct DataRate(long BytesPerSecond, TimeSpan Grace)
{
    public static DataRate None => default;

    public bool IsEnabled => BytesPerSecond > 0;

    /// <summary>Time <paramref name="bytes"/> may take at the floor.</summary>
    public TimeSpan TimeFor(long bytes) => TimeSpan.FromSeconds((double)bytes / BytesPerSecond);
}

/// <summary>Tracks one transfer against a <see cref="DataRate"/>: how long the next piece of it may take.</summary>
public sealed class DataRateClock
{
    // Far past any timeout a caller would set, and well inside what a cancellation timer accepts.
    private static readonly TimeSpan MaxAllowance = TimeSpan.FromDays(1);

    private readonly DataRate _rate;
    private long _dueTimestamp;

    public DataRateClock(DataRate rate)
    {
        _rate = rate;
        Restart();
    }

    /// <summary>Starts a new transfer with a full grace period, so one clock serves a connection's transfers in turn.</summary>
    public void Restart() => _dueTimestamp = Stopwatch.GetTimestamp() + ToTimestamp(_rate.Grace);

    /// <summary>How long the peer has to move the next <paramref name="bytes"/> without falling below the floor.</summary>
    public TimeSpan AllowanceFor(long bytes)
    {
        long now = Stopwatch.GetTimestamp();
        long creditCap = now + ToTimestamp(_rate.Grace);
        _dueTimestamp = Math.Min(_dueTimestamp, creditCap) + ToTimestamp(_rate.TimeFor(bytes));
        double remaining = (double)(_dueTimestamp - now) / Stopwatch.Frequency;
        return TimeSpan.FromSeconds(Math.Clamp(remaining, 0, MaxAllowance.TotalSeconds));
    }

    private static long ToTimestamp(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}

/// <summary>The peer moved bytes slower than the server's minimum data rate; the connection is dropped.</summary>
public sealed class DataRateException(string message) : IOException(message);

using System.Diagnostics;

namespace FileShare.Client;

/// <summary>
/// A cap on the bytes per second that every receive drawing on it takes together: a token bucket that starts full and
/// holds <see cref="Burst"/> bytes, a tenth of a second at the cap. A receive reserves bytes before it reads, waits
/// until the bucket has paid for them, reads at most that many and hands back what the read did not bring, so the
/// socket's receive window, not a buffer here, holds the sender back. Lock-free; safe for any number of receives at once.
/// </summary>
public sealed class TransferRateLimit
{
    /// <summary>
    /// Slowest cap accepted. Below it a tenth of a second is a few dozen bytes, so every read would be a wake-up for a
    /// handful of bytes, and no server that keeps a minimum data rate (4096 bytes/s by default) would serve it anyway.
    /// </summary>
    public const long MinimumBytesPerSecond = 1024;

    private const long MinimumPart = 16 * 1024;

    private readonly double _ticksPerByte;
    private readonly long _burstTicks;
    private int _rangesInFlight;

    // The bucket as one timestamp: it holds (now - _paidUntil) / _ticksPerByte bytes, at most Burst; a _paidUntil in
    // the future is a debt the next reservation waits out.
    private long _paidUntil;

    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bytesPerSecond"/> is below <see cref="MinimumBytesPerSecond"/>.</exception>
    public TransferRateLimit(long bytesPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytesPerSecond, MinimumBytesPerSecond);
        BytesPerSecond = bytesPerSecond;
        Burst = (int)Math.Clamp(bytesPerSecond / 10, MinimumBytesPerSecond, int.MaxValue);
        _ticksPerByte = (double)Stopwatch.Frequency / bytesPerSecond;
        _burstTicks = TicksFor(Burst);
        _paidUntil = Stopwatch.GetTimestamp() - _burstTicks;
    }

    public long BytesPerSecond { get; }

    /// <summary>Most bytes taken at once after a pause, and most one reservation grants.</summary>
    public int Burst { get; }

    /// <summary>
    /// About how long a part of a range takes at one connection's share of the cap: far inside a server's stall
    /// timeout (30 s by default), long enough that the round trip per part costs nothing worth measuring.
    /// </summary>
    internal TimeSpan PartTime { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>
    /// Reserves up to <paramref name="wanted"/> bytes (at most <see cref="Burst"/>) and completes once the cap allows
    /// them; the caller reads no more than the grant and hands back the rest with <see cref="Unused"/>.
    /// </summary>
    public ValueTask<int> ReserveAsync(int wanted, CancellationToken cancellationToken)
    {
        int granted = Math.Min(wanted, Burst);
        long grantTicks = TicksFor(granted);
        long now = Stopwatch.GetTimestamp();
        long paidUntil;
        long observed = Volatile.Read(ref _paidUntil);
        while (true)
        {
            // Credit saved while nobody received is kept only up to one burst.
            paidUntil = Math.Max(observed, now - _burstTicks) + grantTicks;
            long seen = Interlocked.CompareExchange(ref _paidUntil, paidUntil, observed);
            if (seen == observed)
            {
                break;
            }

            observed = seen;
        }

        long waitTicks = paidUntil - now;
        return waitTicks <= 0
            ? ValueTask.FromResult(granted)
            : WaitAsync(granted, TimeSpan.FromSeconds((double)waitTicks / Stopwatch.Frequency), cancellationToken);
    }

    /// <summary>
    /// Counts a range being fetched under this cap until the returned share is disposed, and says how long a part of
    /// it to ask for at once. A server sizes each send to about a second at the client's pace, but its first sends
    /// vanish into socket buffers and look instant, so the send after them can be several MiB, which a client held to
    /// tens of KiB/s takes longer than the server's stall timeout to take. A server on Linux sees the client's
    /// acknowledgements and lets such a send run on; one elsewhere, or an older one, cuts it. A range asked for in
    /// parts that each take a few seconds at this connection's share cannot stall that long anywhere.
    /// </summary>
    internal RangeShare Share()
    {
        Interlocked.Increment(ref _rangesInFlight);
        return new RangeShare(this);
    }

    /// <summary>One range fetched under the cap; see <see cref="Share"/>.</summary>
    internal readonly struct RangeShare(TransferRateLimit limit) : IDisposable
    {
        public long PartLength => Math.Max((long)(limit.BytesPerSecond * limit.PartTime.TotalSeconds) / Math.Max(Volatile.Read(ref limit._rangesInFlight), 1), MinimumPart);

        public void Dispose() => Interlocked.Decrement(ref limit._rangesInFlight);
    }

    /// <summary>
    /// <see cref="ReserveAsync"/> for a receive whose read timeout is <paramref name="readDeadline"/>: the timeout
    /// measures the server's silence, not the wait the cap imposes, so it is disarmed until the next read arms it;
    /// cancelling the call still ends the wait.
    /// </summary>
    internal ValueTask<int> ReserveBeforeReadAsync(int wanted, CancellationTokenSource readDeadline)
    {
        readDeadline.CancelAfter(Timeout.InfiniteTimeSpan);
        return ReserveAsync(wanted, readDeadline.Token);
    }

    /// <summary>Gives back the part of a grant a read did not bring, so a short read does not slow the others.</summary>
    public void Unused(int bytes)
    {
        if (bytes > 0)
        {
            Interlocked.Add(ref _paidUntil, -TicksFor(bytes));
        }
    }

    private async ValueTask<int> WaitAsync(int granted, TimeSpan wait, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Never read: the grant goes back, or every other receive under the cap would wait it out.
            Unused(granted);
            throw;
        }

        return granted;
    }

    private long TicksFor(long bytes) => (long)(bytes * _ticksPerByte);
}

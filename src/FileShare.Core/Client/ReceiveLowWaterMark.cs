using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FileShare.Client;

/// <summary>
/// While a large body arrives on a plain socket on Linux, asks the kernel (SO_RCVLOWAT) to report the socket readable
/// only once a couple of milliseconds' worth of bytes are waiting, rather than at the first segment. A receiver as fast
/// as its sender otherwise wakes for every few dozen KiB; fewer, larger receives took a fifth to a quarter off the
/// client's CPU per GiB of one 1 GiB download on loopback (and changed nothing measurable at 4 or 200 at once). The
/// mark follows the rate measured over the last stretch of the body and never exceeds what is still to come; should the
/// sender slow down or pause, a watchdog drops the mark once a watch period passes with nothing received, so bytes
/// already here are never held back for long.
/// </summary>
internal sealed class ReceiveLowWaterMark : IDisposable
{
    private const int SocketLevel = 1;
    private const int RcvLowAt = 18;
    private const int MaxMark = 1024 * 1024;

    // Below this a mark saves too few wake-ups to pay for the call that sets it.
    private const int MinMark = 64 * 1024;

    // The mark is this many seconds of bytes at the measured rate.
    private const double Window = 0.002;

    // The rate is measured over stretches at least this long: the first receives of a body drain what queued while
    // the destination was being prepared, far faster than the sender sends.
    private const double RateSpan = 0.01;

    private static readonly TimeSpan WatchPeriod = TimeSpan.FromMilliseconds(100);

    // setsockopt wakes a receive already waiting when lowering the mark leaves it readable from Linux 4.18 on.
    private static readonly bool Supported = OperatingSystem.IsLinux() && Environment.OSVersion.Version >= new Version(4, 18);

    private readonly Socket _socket;
    private readonly object _gate = new();
    private Timer? _watchdog;
    private bool _watching;
    private long _since;
    private long _receivedSince;
    private long _wanted;
    private long _received;
    private long _receivedAtLastWatch;
    private int _mark = 1;

    private ReceiveLowWaterMark(Socket socket) => _socket = socket;

    /// <summary>A mark for bodies on <paramref name="socket"/>; null where the kernel has none to set.</summary>
    public static ReceiveLowWaterMark? For(Socket? socket) => socket is not null && Supported ? new ReceiveLowWaterMark(socket) : null;

    public void Begin()
    {
        _since = Stopwatch.GetTimestamp();
        _receivedSince = 0;
        _wanted = 0;
        Volatile.Write(ref _received, 0);
        _receivedAtLastWatch = -1;
    }

    /// <summary>Moves the mark after a receive, from the body's bytes received so far and still to come.</summary>
    public void Update(long received, long remaining)
    {
        Volatile.Write(ref _received, received);
        long now = Stopwatch.GetTimestamp();
        double seconds = Stopwatch.GetElapsedTime(_since, now).TotalSeconds;
        if (seconds >= RateSpan)
        {
            _wanted = (long)((received - _receivedSince) / seconds * Window);
            (_since, _receivedSince) = (now, received);
        }

        int mark = (int)Math.Min(Math.Min(_wanted, MaxMark), remaining);
        if (mark < MinMark)
        {
            mark = 1;
        }

        // Set again only when it moves by half or more, or must come down below what is still to come.
        int current = Volatile.Read(ref _mark);
        if (mark != current && (mark > current * 2 || mark < current / 2 || current > remaining))
        {
            lock (_gate)
            {
                Set(mark);
                if (mark > 1 && !_watching)
                {
                    _watchdog ??= new Timer(static state => ((ReceiveLowWaterMark)state!).Watch(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                    _watchdog.Change(WatchPeriod, WatchPeriod);
                    _watching = true;
                }
            }
        }
    }

    /// <summary>Back to the kernel's default for the frames after the body.</summary>
    public void End()
    {
        lock (_gate)
        {
            if (_watching)
            {
                _watchdog!.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _watching = false;
            }

            if (_mark != 1)
            {
                Set(1);
            }
        }
    }

    public void Dispose() => _watchdog?.Dispose();

    private void Watch()
    {
        long received = Volatile.Read(ref _received);
        lock (_gate)
        {
            if (_watching && received == _receivedAtLastWatch && _mark != 1)
            {
                Set(1);
            }

            _receivedAtLastWatch = received;
        }
    }

    private void Set(int mark)
    {
        try
        {
            Span<byte> value = stackalloc byte[sizeof(int)];
            MemoryMarshal.Write(value, in mark);
            _socket.SetRawSocketOption(SocketLevel, RcvLowAt, value);
            Volatile.Write(ref _mark, mark);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // A broken connection fails the next receive with the real cause.
        }
    }
}

using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>
/// Get-RemoteFile's progress as a host other than the console sees it: PowerShell.Streams.Progress. Downloads go
/// through a relay paced so each takes about 1.6 s, several of the reporter's quarter-second ticks; where a test needs
/// ticks during the transfer, the relay also holds the rest back until they are seen.
/// </summary>
public sealed class DownloadProgressReporterTests : IDisposable
{
    private const long LargeFile = 80L << 20;
    private const long RelayBytesPerSecond = 50L << 20;
    private const int OverallActivity = 1;
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _destination;
    private readonly FileShareServerJob _server;
    private readonly ThrottledRelay _relay;
    private readonly string _largeSha256;

    public DownloadProgressReporterTests()
    {
        _session = new PowerShellSession(_temp.Path);
        string share = _temp.Folder("share");
        _destination = _temp.Join("dest");
        // Random bytes: a download that lost or misplaced some would still have the length, not the hash.
        _largeSha256 = TestFiles.Sha256(TestFiles.Write(share, "large.bin", (int)LargeFile));
        _server = _session.StartServer(share);

        // Hash the file now: the relay paces from connection time, so a slow first hash on a loaded machine would
        // spend the pacing budget and let the bytes through in one burst.
        _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Hash", new { _server.Port }).AssertNoErrors();
        _relay = new ThrottledRelay(_server.Port, RelayBytesPerSecond);
    }

    public void Dispose()
    {
        _relay.Dispose();
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void LargerDownload_ReportsProgressPerFileAndOverall_EndingWithCompletedRecords()
    {
        // The relay paces from its connection's start, so time the client spent first (a loaded machine) lets the rest
        // through in a burst: it holds back after 8 MiB until large.bin's bar has been drawn on two ticks.
        _relay.HoldAfter(8 << 20);
        using RunningInvocation download = _session.Begin("param($Port, $Dest) Get-RemoteFile -Name large.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { _relay.Port, Dest = _destination });
        try
        {
            Eventually.True(() => RunningInvocation.Snapshot(download.Shell.Streams.Progress).Count(IsFileTick) >= 2 || download.IsCompleted, "large.bin's progress is drawn on two ticks");
        }
        finally
        {
            _relay.Release();
        }

        IReadOnlyList<ProgressRecord> progress = download.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors().Progress;
        Assert.Equal(_largeSha256, TestFiles.Sha256(Path.Join(_destination, "large.bin")));

        ProgressRecord[] overall = progress.Where(p => p.ActivityId == OverallActivity).ToArray();
        ProgressRecord[] file = progress.Where(p => p.ActivityId != OverallActivity).ToArray();
        Assert.True(file.Count(IsFileTick) >= 2, $"Expected progress for large.bin on at least two ticks; got {file.Length} record(s).");
        Assert.All(file, p =>
        {
            Assert.Equal(OverallActivity, p.ParentActivityId);
            Assert.Contains("large.bin", p.Activity);
        });
        Assert.All(file.Where(p => p.RecordType == ProgressRecordType.Processing), p => Assert.Contains($"127.0.0.1:{_relay.Port}", p.Activity));
        Assert.Contains(overall, p => p.RecordType == ProgressRecordType.Processing && p.StatusDescription.StartsWith("0 of 1 files", StringComparison.Ordinal));
        AssertNeverDecreases(file);
        AssertNeverDecreases(overall);

        // Each activity ends with exactly one Completed record; the overall one is the very last record.
        Assert.Equal(ProgressRecordType.Completed, file[^1].RecordType);
        Assert.Single(file, p => p.RecordType == ProgressRecordType.Completed);
        Assert.Equal((OverallActivity, ProgressRecordType.Completed), (progress[^1].ActivityId, progress[^1].RecordType));
        Assert.Single(overall, p => p.RecordType == ProgressRecordType.Completed);
    }

    [Fact]
    public void FromTwoSources_TheFileRecordShowsTheBytesOfEach()
    {
        // Two paced sources halve the download to about 0.8 s, which leaves at most a tick after a file bar's first
        // half second (none when the relays pass a burst). So each relay holds back the rest after its first 4 MiB
        // until a file record naming both sources is seen: both are then under way, however fast or loaded the machine.
        using var second = new ThrottledRelay(_server.Port, RelayBytesPerSecond);
        _relay.HoldAfter(4 << 20);
        second.HoldAfter(4 << 20);
        using RunningInvocation download = _session.Begin("param($Port, $Second, $Dest) Get-RemoteFile -Name large.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -Source 127.0.0.1:$Second",
            new { _relay.Port, Second = second.Port, Dest = _destination });
        Func<ProgressRecord, bool> showsBoth = p => p.ActivityId != OverallActivity && p.RecordType == ProgressRecordType.Processing
            && p.StatusDescription.Contains($"127.0.0.1:{_relay.Port} ") && p.StatusDescription.Contains($"127.0.0.1:{second.Port} ");
        try
        {
            Eventually.True(() => RunningInvocation.Snapshot(download.Shell.Streams.Progress).Any(showsBoth) || download.IsCompleted, "a file record shows the bytes of both sources");
        }
        finally
        {
            _relay.Release();
            second.Release();
        }

        IReadOnlyList<ProgressRecord> progress = download.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors().Progress;
        Assert.Equal(_largeSha256, TestFiles.Sha256(Path.Join(_destination, "large.bin")));
        Assert.Contains(progress, p => showsBoth(p));
        Assert.Equal(ProgressRecordType.Completed, progress[^1].RecordType);
    }

    [Fact]
    public void Before_the_first_byte_the_overall_bar_says_it_waits_for_the_servers_and_no_rate()
    {
        // A server hashing a large file for the first time answers nothing for a while: the relay passes nothing at first.
        _relay.HoldAfter(0);
        using RunningInvocation download = _session.Begin("param($Port, $Dest) Get-RemoteFile -Name large.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { _relay.Port, Dest = _destination });
        try
        {
            Eventually.True(() => RunningInvocation.Snapshot(download.Shell.Streams.Progress).Any(p => p.ActivityId == OverallActivity) || download.IsCompleted, "the overall bar is drawn");
        }
        finally
        {
            _relay.Release();
        }

        IReadOnlyList<ProgressRecord> progress = download.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors().Progress;
        Assert.Equal(_largeSha256, TestFiles.Sha256(Path.Join(_destination, "large.bin")));
        Assert.Equal("0 of 1 files; waiting for the servers to answer", progress.First(p => p.ActivityId == OverallActivity).StatusDescription);
        Assert.DoesNotContain(progress, p => p.StatusDescription.Contains("0 B of 0 B", StringComparison.Ordinal) || p.StatusDescription.Contains(" 0 B/s", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("$ProgressPreference = 'SilentlyContinue';", "")]
    [InlineData("", "-ProgressAction SilentlyContinue")]
    public void SilencedProgress_WritesNoProgressRecords(string prefix, string suffix)
    {
        Invocation result = Download(prefix, suffix);

        Assert.Empty(result.Progress);
    }

    [Fact]
    public void A_download_done_before_the_first_progress_tick_writes_no_progress()
    {
        // The reporter's first tick comes a quarter second into the command. A loaded machine can make even a 1 KiB
        // download slower than that; only a download measured faster says anything, so a slow one is tried again.
        File.WriteAllBytes(Path.Join(_temp.Folder("share"), "small.bin"), new byte[1024]);
        for (int attempt = 1; ; attempt++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile -Name small.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
                new { _server.Port, Dest = _temp.Join($"quick{attempt}") }).AssertNoErrors();
            clock.Stop();
            Assert.Equal(1024, new FileInfo(Path.Join(_temp.Join($"quick{attempt}"), "small.bin")).Length);
            if (clock.Elapsed < TimeSpan.FromMilliseconds(200))
            {
                Assert.Empty(result.Progress);
                return;
            }

            Assert.True(attempt < 10, $"Ten 1 KiB downloads each took longer than the reporter's first tick; the last took {clock.ElapsedMilliseconds} ms.");
        }
    }

    private Invocation Download(string prefix = "", string suffix = "")
    {
        Invocation result = _session.Run($"param($Port, $Dest) {prefix} Get-RemoteFile -Name large.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest {suffix}",
            new { _relay.Port, Dest = _destination }).AssertNoErrors();
        Assert.Equal(_largeSha256, TestFiles.Sha256(Path.Join(_destination, "large.bin")));
        return result;
    }

    private static bool IsFileTick(ProgressRecord p) =>
        p.ActivityId != OverallActivity && p.RecordType == ProgressRecordType.Processing && p.PercentComplete is >= 0 and < 100;

    private static void AssertNeverDecreases(IEnumerable<ProgressRecord> records)
    {
        int[] percents = records.Where(p => p.RecordType == ProgressRecordType.Processing).Select(p => p.PercentComplete).ToArray();
        Assert.Equal(percents.Order(), percents);
    }
}

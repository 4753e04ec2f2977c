using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

public sealed class StopFileShareServerTests : IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(15);
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;

    public StopFileShareServerTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        TestFiles.Write(_share, "file.txt", 1_000);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void ByPort_FreesThePort_AndANewServerCanTakeItAtOnce()
    {
        FileShareServerJob job = _session.StartServer(_share);
        int port = job.Port;
        _session.Run("param($Port, $Dest) Get-RemoteFile -Name file.txt -ComputerName 127.0.0.1 -Port $Port -Destination $Dest", new { Port = port, Dest = _temp.Join("dest") })
            .AssertNoErrors();

        _session.Run("param($Port) Stop-FileShareServer -Port $Port", new { Port = port }, StopTimeout).AssertNoErrors();

        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
        Ports.AssertFree(port);
        FileShareServerJob again = Assert.Single(_session.Run("param($Port, $Path) Start-FileShareServer -Port $Port -Path $Path -BindAddress 127.0.0.1", new { Port = port, Path = _share })
            .AssertNoErrors().Objects<FileShareServerJob>());
        Assert.Equal(port, again.Port);
        Assert.Equal(JobState.Running, again.JobStateInfo.State);
        Assert.Single(_session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { Port = port }).AssertNoErrors().Output);
    }

    [Fact]
    public void ByPort_StopsEveryServerOnThePort_OnePerBindAddress()
    {
        FileShareServerJob v4 = _session.StartServer(_share);
        FileShareServerJob v6 = Assert.Single(_session.Run("param($Port, $Path) Start-FileShareServer -Port $Port -Path $Path -BindAddress ::1", new { v4.Port, Path = _share })
            .AssertNoErrors().Objects<FileShareServerJob>());

        _session.Run("param($Port) Stop-FileShareServer -Port $Port", new { v4.Port }, StopTimeout).AssertNoErrors();

        Assert.All([v4, v6], job => Assert.Equal(JobState.Stopped, job.JobStateInfo.State));
        Ports.AssertFree(v4.Port);
        Ports.AssertFree(v4.Port, System.Net.IPAddress.IPv6Loopback);
    }

    [Fact]
    public void GetFileShareServerPipedIn_StopsThoseServers_ByPort()
    {
        FileShareServerJob first = _session.StartServer(_share);
        FileShareServerJob second = _session.StartServer(_share);

        _session.Run("param($Port) Get-FileShareServer -Port $Port | Stop-FileShareServer", new { first.Port }, StopTimeout).AssertNoErrors();

        Assert.Equal((JobState.Stopped, JobState.Running), (first.JobStateInfo.State, second.JobStateInfo.State));
        Ports.AssertFree(first.Port);
    }

    [Fact]
    public void JobsFromThePipeline_AreStopped()
    {
        FileShareServerJob[] jobs = [_session.StartServer(_share), _session.StartServer(_share)];

        Invocation result = _session.Run("Get-Job | Stop-FileShareServer -PassThru", timeout: StopTimeout).AssertNoErrors();

        Assert.Equal(jobs.Select(j => j.Id).Order(), result.Objects<FileShareServerJob>().Select(j => j.Id).Order());
        AssertStoppedAndFree(jobs);
    }

    [Fact]
    public void All_StopsEveryServerOfTheSession()
    {
        FileShareServerJob[] jobs = [_session.StartServer(_share), _session.StartServer(_share)];

        Invocation result = _session.Run("Stop-FileShareServer -All", timeout: StopTimeout).AssertNoErrors();

        Assert.Empty(result.Output);
        AssertStoppedAndFree(jobs);
    }

    [Fact]
    public void WhatIf_StopsNothing()
    {
        FileShareServerJob job = _session.StartServer(_share);

        _session.Run("param($Port) Stop-FileShareServer -All -WhatIf; Stop-FileShareServer -Port $Port -WhatIf", new { job.Port }).AssertNoErrors();

        Assert.Equal(JobState.Running, job.JobStateInfo.State);
        Assert.Single(_session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { job.Port }).AssertNoErrors().Output);
    }

    [Fact]
    public void PortWithoutAServer_IsServerNotFound_AndOtherServersKeepRunning()
    {
        FileShareServerJob job = _session.StartServer(_share);
        int unknown = Ports.Free();

        Invocation result = _session.Run("param($Port) Stop-FileShareServer -Port $Port", new { Port = unknown });

        ErrorRecord error = result.SingleError("ServerNotFound", ErrorCategory.ObjectNotFound);
        Assert.Contains(unknown.ToString(), error.Exception.Message);
        Assert.Equal(unknown, error.TargetObject);
        Assert.Equal(JobState.Running, job.JobStateInfo.State);
    }

    [Fact]
    public void StopJob_StopsTheServer_WithoutHanging()
    {
        FileShareServerJob job = _session.StartServer(_share);

        _session.Run("param($Job) Stop-Job -Job $Job", new { Job = job }, StopTimeout).AssertNoErrors();

        AssertStoppedAndFree([job]);
        // Stopping a stopped job again is harmless and returns at once too.
        _session.Run("param($Job) Stop-Job -Job $Job", new { Job = job }, StopTimeout).AssertNoErrors();
    }

    [Fact]
    public void StopJob_DoesNotWaitOutTheDrainTimeoutForAnIdleClient()
    {
        FileShareServerJob job = _session.StartServer(_share);
        using var idle = new System.Net.Sockets.TcpClient();
        idle.Connect(System.Net.IPAddress.Loopback, job.Port);
        Eventually.True(() => job.ActiveConnections == 1, "the server has accepted the idle connection");

        Invocation result = _session.Run("param($Job) Stop-Job -Job $Job", new { Job = job }, StopTimeout).AssertNoErrors();

        Assert.True(result.Duration < job.DrainTimeout / 2, $"Stop-Job took {result.Duration.TotalSeconds:0.0} s with only an idle connection open.");
        AssertStoppedAndFree([job]);
    }

    [Fact]
    public void RemoveJobForce_StopsAndRemovesARunningServer()
    {
        FileShareServerJob job = _session.StartServer(_share);
        int port = job.Port;

        _session.Run("param($Job) Remove-Job -Job $Job -Force", new { Job = job }, StopTimeout).AssertNoErrors();

        Assert.Empty(_session.Run("Get-Job").Output);
        Ports.AssertFree(port);
    }

    [Fact]
    public void RemoveJob_RemovesAStoppedServer()
    {
        FileShareServerJob job = _session.StartServer(_share);

        _session.Run("param($Job) Stop-Job -Job $Job; Remove-Job -Job $Job", new { Job = job }, StopTimeout).AssertNoErrors();

        Assert.Empty(_session.Run("Get-Job").Output);
        Ports.AssertFree(job.Port);
    }

    [Fact]
    public void ClosingTheRunspace_StopsItsServers()
    {
        using var other = new PowerShellSession(_temp.Path);
        FileShareServerJob[] jobs = [other.StartServer(_share), other.StartServer(_share)];
        FileShareServerJob mine = _session.StartServer(_share);

        Eventually.Within(other.Dispose, StopTimeout, "Closing the runspace");

        AssertStoppedAndFree(jobs);
        Assert.Equal(JobState.Running, mine.JobStateInfo.State);
        Assert.True(Ports.Accepts(mine.Port), "Closing another runspace stopped this session's server.");
    }

    [Fact]
    public void TransferInFlight_FinishesWithinTheTimeout_WhileThePortIsAlreadyFree()
    {
        FileShareServerJob job = _session.StartServer(_share);
        // The relay passes on 2 MiB and then holds the rest back until released: with 30 MiB more than loopback socket
        // buffers hold, the server is surely still sending while the stop is checked, however slow the machine.
        using SlowDownload slow = BeginSlowDownload(job, 32 << 20, bytesPerSecond: 32 << 20, holdAfter: 2 << 20, randomContent: true);
        var (relay, download, destination) = (slow.Relay, slow.Download, slow.Destination);
        Eventually.True(() => relay.Holding, "the relay holds the rest of the file back");

        using RunningInvocation stopping = _session.Begin("param($Port) Stop-FileShareServer -Port $Port -Timeout 30", new { job.Port });
        Eventually.True(() => job.JobStateInfo.State != JobState.Running, "the server is stopping");
        Ports.AssertFree(job.Port);
        Assert.False(stopping.IsCompleted, "Stop-FileShareServer returned before the transfer in flight had finished.");
        Assert.False(download.IsCompleted, "The download ended while the relay still held back most of the file.");

        relay.Release();
        download.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors();
        stopping.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors();
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "slow.bin")), TestFiles.Sha256(Path.Join(destination, "slow.bin")));
        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
    }

    [Fact]
    public void RateCappedDownloadAskingInParts_GetsTheRestOfItsFile_WhileTheServerStops()
    {
        FileShareServerJob job = _session.StartServer(_share);
        // Under the cap a file is asked for in parts of about four seconds each: 16 MiB at 4 MB/s, so two parts here.
        // Random bytes, so a part that went missing or landed at the wrong offset changes the hash.
        TestFiles.Write(_share, "capped.bin", 24 << 20);
        using var client = new PowerShellSession(_temp.Path);
        string destination = _temp.Join("capped");
        using RunningInvocation download = client.Begin("param($Port, $Dest) Get-RemoteFile -Name capped.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -MaxBytesPerSecond 4MB",
            new { job.Port, Dest = destination });
        Eventually.True(() => job.BytesSent > 1 << 20, "the first part is on its way");

        using RunningInvocation stopping = _session.Begin("param($Port) Stop-FileShareServer -Port $Port -Timeout 30", new { job.Port });
        Eventually.True(() => job.JobStateInfo.State != JobState.Running, "the server is stopping");
        Ports.AssertFree(job.Port);

        download.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors();
        stopping.Wait(PowerShellSession.DefaultTimeout).AssertNoErrors();
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "capped.bin")), TestFiles.Sha256(Path.Join(destination, "capped.bin")));
        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
    }

    [Fact]
    public void TimeoutZero_CutsTheTransferInFlight_AndTheClientKeepsOnlyItsResumablePartialFile()
    {
        FileShareServerJob job = _session.StartServer(_share);
        // Half a minute of transfer: a stop that waited for it would overrun StopTimeout and fail the Run below.
        using SlowDownload slow = BeginSlowDownload(job, 64 << 20, bytesPerSecond: 2 << 20);
        var (relay, download, destination) = (slow.Relay, slow.Download, slow.Destination);
        // A verified piece to resume from (a cut before the first would leave nothing: there is nothing to keep).
        Eventually.True(() => File.Exists(Path.Join(destination, ".slow.bin.partial.state")), "a verified piece is recorded", TimeSpan.FromSeconds(30));

        _session.Run("param($Port) Stop-FileShareServer -Port $Port -TimeoutSec 0", new { job.Port }, StopTimeout).AssertNoErrors();

        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
        Ports.AssertFree(job.Port);
        // A cut shows as an early end of the data or a reset connection, depending on who closes first.
        ErrorRecord error = Assert.Single(download.Wait(PowerShellSession.DefaultTimeout).Errors);
        Assert.Contains(error.FullyQualifiedErrorId.Split(',')[0], new[] { "IncompleteTransfer", "ServerUnreachable" });
        Assert.Equal(ErrorCategory.ConnectionError, error.CategoryInfo.Category);
        Assert.Contains("slow.bin", error.Exception.Message);
        Assert.Contains($"127.0.0.1:{relay.Port}", error.Exception.Message);
        Assert.Equal([".slow.bin.partial", ".slow.bin.partial.state"], TestFiles.List(destination));
    }

    [Fact]
    public void CtrlCWhileDraining_ReturnsPromptly_AndTheServerStillStopsWhenTheTransferEnds()
    {
        FileShareServerJob job = _session.StartServer(_share);
        // Half a minute of transfer and a minute's -Timeout: a Ctrl+C that did not cut the wait would overrun the guard below.
        using SlowDownload slow = BeginSlowDownload(job, 64 << 20, bytesPerSecond: 2 << 20);
        var (relay, download, destination) = (slow.Relay, slow.Download, slow.Destination);
        using RunningInvocation stopping = _session.Begin("param($Port) Stop-FileShareServer -Port $Port -Timeout 60", new { job.Port });
        Eventually.True(() => job.JobStateInfo.State == JobState.Stopping, "the server is draining");

        Eventually.Within(stopping.Shell.Stop, TimeSpan.FromSeconds(15), "Ctrl+C on Stop-FileShareServer while it waited for a transfer");

        Assert.Equal(PSInvocationState.Stopped, stopping.Shell.InvocationStateInfo.State);
        Ports.AssertFree(job.Port);
        Assert.Equal(JobState.Stopping, job.JobStateInfo.State);
        Assert.False(download.IsCompleted, "The download ended when Stop-FileShareServer was interrupted; it should have been left to drain.");

        // Once the last transfer ends (here: its client gives up), the server finishes stopping on its own.
        Eventually.Within(download.Shell.Stop, TimeSpan.FromSeconds(10), "Stopping the download");
        Eventually.True(() => job.JobStateInfo.State == JobState.Stopped, "the server has stopped after its last transfer");
        Assert.DoesNotContain("slow.bin", TestFiles.List(destination));
    }

    [Fact]
    public void TimeoutZero_WhileALongDrainRuns_CutsTheTransferAtOnce()
    {
        FileShareServerJob job = _session.StartServer(_share);
        using SlowDownload slow = BeginSlowDownload(job, 64 << 20, bytesPerSecond: 1 << 20);
        using (RunningInvocation patient = _session.Begin("param($Port) Stop-FileShareServer -Port $Port -Timeout 600", new { job.Port }))
        {
            Eventually.True(() => job.JobStateInfo.State == JobState.Stopping, "the server is draining");
            Eventually.Within(patient.Shell.Stop, TimeSpan.FromSeconds(10), "Ctrl+C on the patient Stop-FileShareServer");
        }

        _session.Run("param($Port) Stop-FileShareServer -Port $Port -Timeout 0", new { job.Port }, StopTimeout).AssertNoErrors();

        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
        Assert.Equal(0, job.ActiveConnections);
        slow.Download.Wait(PowerShellSession.DefaultTimeout).SingleError("IncompleteTransfer", System.Management.Automation.ErrorCategory.ConnectionError);
    }

    [Fact]
    public void ReceiveJob_StillYieldsTheLogOfAStoppedServer()
    {
        FileShareServerJob job = _session.StartServer(_share);
        _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { job.Port }).AssertNoErrors();
        Eventually.True(() => job.Requests == 1, "the listing is logged");

        _session.Run("param($Job) Stop-Job -Job $Job", new { Job = job }, StopTimeout).AssertNoErrors();

        var record = Assert.Single(_session.Run("param($Job) Receive-Job -Job $Job", new { Job = job }).AssertNoErrors().Objects<FileShare.Server.RequestLogRecord>());
        Assert.Equal((FileShare.Server.RequestKind.List, "Ok"), (record.Request, record.Outcome));
        Assert.False(job.HasMoreData);
    }

    private static void AssertStoppedAndFree(FileShareServerJob[] jobs)
    {
        foreach (FileShareServerJob job in jobs)
        {
            Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
            Ports.AssertFree(job.Port);
        }
    }

    /// <summary>
    /// Starts, from a second session, a download of slow.bin (sparse, or random bytes for tests that compare them) that a
    /// relay paces to <paramref name="bytesPerSecond"/> (and holds after <paramref name="holdAfter"/> bytes), and returns
    /// once file bytes are on their way.
    /// </summary>
    private SlowDownload BeginSlowDownload(FileShareServerJob job, int length, long bytesPerSecond, long? holdAfter = null, bool randomContent = false)
    {
        if (randomContent)
        {
            TestFiles.Write(_share, "slow.bin", length);
        }
        else
        {
            TestFiles.Sparse(_share, "slow.bin", length);
        }

        var relay = new ThrottledRelay(job.Port, bytesPerSecond);
        if (holdAfter is { } bytes)
        {
            relay.HoldAfter(bytes);
        }

        var client = new PowerShellSession(_temp.Path);
        string destination = _temp.Join("dest");
        RunningInvocation download = client.Begin("param($Port, $Dest) Get-RemoteFile -Name slow.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { relay.Port, Dest = destination });
        // File bytes on the way, not just a partial file: between the digest and the read the connection is idle, and a
        // server stopping then closes it rather than serving a request it has not yet received.
        // A new runspace, the module's import and the server's digest of the whole file come first: on a loaded machine
        // that can take many seconds.
        Eventually.True(() => File.Exists(Path.Join(destination, ".slow.bin.partial")) && relay.BytesToClients > 1 << 20, "the download has started", TimeSpan.FromSeconds(60));
        return new SlowDownload(relay, client, download, destination);
    }

    private sealed record SlowDownload(ThrottledRelay Relay, PowerShellSession Client, RunningInvocation Download, string Destination) : IDisposable
    {
        public void Dispose()
        {
            Download.Dispose();
            Client.Dispose();
            Relay.Dispose();
        }
    }
}

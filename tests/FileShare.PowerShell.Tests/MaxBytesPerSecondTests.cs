using System.Management.Automation;
using FileShare.Client;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;
using FileShare.Server;

namespace FileShare.PowerShell.Tests;

/// <summary>
/// Get-RemoteFile -MaxBytesPerSecond: one cap for the whole call, what it refuses, how it stops, and what a server's
/// minimum data rate does to a cap below it. Only lower bounds on time are asserted.
/// </summary>
public sealed class MaxBytesPerSecondTests : IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;
    private readonly string _destination;

    public MaxBytesPerSecondTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        _destination = _temp.Join("dest");
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void ASizeLiteralCapsTheWholeCall_EveryFileArrivesWhole_WithProgressAndPassThruIntact()
    {
        TestFiles.Write(_share, "a.bin", 2 * MiB, seed: 1);
        TestFiles.Write(_share, "b.bin", MiB, seed: 2);
        FileShareServerJob server = _session.StartServer(_share);

        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile -Name a.bin, b.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -ThrottleLimit 2 -MaxBytesPerSecond 2MB -PassThru",
            new { server.Port, Dest = _destination }).AssertNoErrors();

        long cap = 2 * MiB;
        var floor = TimeSpan.FromSeconds((double)((3 * MiB) - new TransferRateLimit(cap).Burst) / cap);
        Assert.True(result.Duration >= floor, $"3 MiB at 2 MiB/s took {result.Duration.TotalSeconds:0.00} s, less than the {floor.TotalSeconds:0.00} s the cap allows");
        TestFiles.AssertSameTree(_share, _destination);
        PSObject[] files = result.Output.OrderBy(f => (string)f.Properties["Name"].Value, StringComparer.Ordinal).ToArray();
        Assert.Equal([2L * MiB, MiB], files.Select(f => (long)f.Properties["Length"].Value));
        Assert.Equal([TestFiles.Sha256(Path.Join(_share, "a.bin")), TestFiles.Sha256(Path.Join(_share, "b.bin"))], files.Select(f => (string)f.Properties["Sha256"].Value));
        ProgressRecord[] processing = result.Progress.Where(p => p.RecordType == ProgressRecordType.Processing && p.ActivityId != 1).ToArray();
        Assert.Contains(processing, p => p.PercentComplete is > 0 and < 100);
        Assert.All(processing.GroupBy(p => p.Activity), file => Assert.Equal(file.Select(p => p.PercentComplete).Order(), file.Select(p => p.PercentComplete)));
        Assert.Equal(ProgressRecordType.Completed, result.Progress[^1].RecordType);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1MB")]
    [InlineData("1023")]
    public void ACapBelowOneKiBPerSecond_IsAParameterValidationError_NamingTheMinimum(string cap)
    {
        TestFiles.Write(_share, "a.bin", 10);

        Invocation result = _session.Run($"param($Dest) Get-RemoteFile -Name a.bin -ComputerName 127.0.0.1 -Port 1 -Destination $Dest -MaxBytesPerSecond {cap}",
            new { Dest = _destination });

        ErrorRecord error = result.SingleError("ParameterArgumentValidationError", ErrorCategory.InvalidData);
        Assert.Contains("MaxBytesPerSecond", error.Exception.Message);
        Assert.Contains("1024", error.Exception.Message);
        Assert.False(Directory.Exists(_destination));
    }

    [Fact]
    public void StopWhileTheCapHoldsTheDownloadBack_StopsIt_KeepsOnlyTheHiddenPartialFile_AndClosesTheConnection()
    {
        TestFiles.Write(_share, "slow.bin", MiB);
        FileShareServerJob server = _session.StartServer(_share);
        string partial = Path.Join(_destination, ".slow.bin.partial");
        using RunningInvocation download = _session.Begin("param($Port, $Dest) Get-RemoteFile -Name slow.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -MaxBytesPerSecond 1KB",
            new { server.Port, Dest = _destination });
        Eventually.True(() => (File.Exists(partial) && server.ActiveConnections > 0) || download.IsCompleted, "the download is under way");
        Assert.False(download.IsCompleted, "At 1 KiB/s the download cannot have finished.");

        Eventually.Within(download.Shell.Stop, TimeSpan.FromSeconds(10), "PowerShell.Stop()");

        Assert.Equal(PSInvocationState.Stopped, download.Shell.InvocationStateInfo.State);
        Assert.Empty(download.Wait(TimeSpan.FromSeconds(1)).Errors);
        Assert.DoesNotContain("slow.bin", TestFiles.List(_destination));

        // A wait the stop did not cut would keep taking a KiB a second on this connection for the next seventeen minutes.
        Eventually.True(() => server.ActiveConnections == 0, "the stopped download's connection is closed");
    }

    [Fact]
    public void UnderErrorActionStop_TheFirstErrorEndsTheWholeCall_AndNoDownloadGoesOnAfterIt()
    {
        // At 1 MiB/s slow.bin would take over four minutes: a call that waited for it cannot end within the bound
        // below, while one that ends at the error does so in well under it even on a loaded machine.
        TestFiles.Sparse(_share, "slow.bin", 256L * MiB);
        FileShareServerJob server = _session.StartServer(_share);
        // From a second server, so its error is not queued behind slow.bin's body on one connection.
        FileShareServerJob other = _session.StartServer(_temp.Folder("other"));

        Invocation result = _session.Run("""
            param($Port, $OtherPort, $Dest)
            [pscustomobject]@{ Name = 'slow.bin'; Port = $Port }, [pscustomobject]@{ Name = 'missing.bin'; Port = $OtherPort } |
                Get-RemoteFile -ComputerName 127.0.0.1 -Destination $Dest -ThrottleLimit 2 -MaxBytesPerSecond 1MB -ErrorAction Stop
            """, new { server.Port, OtherPort = other.Port, Dest = _destination }, timeout: TimeSpan.FromSeconds(90));

        ErrorRecord error = Assert.Single(result.Errors, e => e.FullyQualifiedErrorId.StartsWith("RemoteFileNotFound", StringComparison.Ordinal));
        Invocation.AssertError(error, "RemoteFileNotFound", ErrorCategory.ObjectNotFound);
        Assert.Contains("missing.bin", error.Exception.Message);
        Assert.True(result.Duration < TimeSpan.FromSeconds(60), $"the call took {result.Duration.TotalSeconds:0.0} s: it waited for slow.bin instead of ending at the error");
        Assert.DoesNotContain("slow.bin", TestFiles.List(_destination));

        // The call has ended, so nothing of it may still hold (and write) slow.bin's partial file.
        foreach (string partial in Directory.EnumerateFiles(_destination, "*", SearchOption.AllDirectories))
        {
            using FileStream taken = new(partial, FileMode.Open, FileAccess.ReadWrite, System.IO.FileShare.None);
        }

        Eventually.True(() => server.ActiveConnections == 0, "the cancelled download's connection is closed");
    }

    [Fact]
    public void ACapBelowTheServersMinDataRate_IsCutByTheServer_AsIncompleteTransfer_LeavingNoDestinationFile()
    {
        // Under a cap a file is asked for in parts of about four seconds at the cap (16 MiB here); a part must be
        // far larger than the socket buffers, which the server counts as taken the moment they swallow a send.
        TestFiles.Write(_share, "floor.bin", 32 * MiB);
        FileShareServerJob server = _session.StartServer(_share, "-MinDataRate 64MB -MinDataRateGraceSec 1");

        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile -Name floor.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -MaxBytesPerSecond 4MB",
            new { server.Port, Dest = _destination });

        ErrorRecord error = result.SingleError("IncompleteTransfer", ErrorCategory.ConnectionError);
        Assert.Contains($"127.0.0.1:{server.Port}", error.Exception.Message);
        Assert.DoesNotContain("floor.bin", TestFiles.List(_destination));
        Eventually.True(() => ServerLog(server).Any(r => r.Outcome.StartsWith("TooSlow", StringComparison.Ordinal)), "the server logs the slow client");
    }

    private RequestLogRecord[] ServerLog(FileShareServerJob job) =>
        _session.Run("param($Job) Receive-Job -Job $Job -Keep", new { Job = job }).AssertNoErrors().Objects<RequestLogRecord>().ToArray();
}

using System.Management.Automation;
using System.Text.RegularExpressions;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>The server job as PowerShell's job API and a user's Get-Job see it.</summary>
public sealed class FileShareServerJobTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;

    public FileShareServerJobTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        TestFiles.Write(_share, "file.txt", 4_096);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void DescribesItselfByPortAddressAndTraffic()
    {
        FileShareServerJob job = StartServerThatServedOneDownload();

        Assert.Equal($"FileShare:{job.Port}", job.Name);
        Assert.Equal($"127.0.0.1:{job.Port}", job.Location);
        Assert.Equal("127.0.0.1", job.BindAddress);
        Assert.Equal("0 connection(s), 2 request(s), 4096 byte(s) sent", job.StatusMessage);
        Assert.Equal(1, job.TotalConnections);
        Assert.Contains("Start-FileShareServer", job.Command);
    }

    [Fact]
    public void CrossesRemotingWithItsPortFolderAddressesAndFigures()
    {
        FileShareServerJob job = StartServerThatServedOneDownload();

        // The serializer that remoting and Export-Clixml use, and the table a user would see on the client.
        Invocation result = _session.Run(
            """
            param($Job)
            $copy = [Management.Automation.PSSerializer]::Deserialize([Management.Automation.PSSerializer]::Serialize($Job))
            $copy
            $copy | Format-Table | Out-String -Width 200
            """,
            new { Job = job }).AssertNoErrors();

        PSObject copy = result.Output[0];
        Assert.Equal("Deserialized.FileShare.PowerShell.Jobs.FileShareServerJob", copy.TypeNames[0]);
        Assert.Equal(job.Port, copy.Properties["Port"].Value);
        Assert.Equal(_share, copy.Properties["Root"].Value);
        Assert.Equal("127.0.0.1", copy.Properties["BindAddress"].Value);
        Assert.Equal(2L, copy.Properties["Requests"].Value);
        Assert.Equal(4_096L, copy.Properties["BytesSent"].Value);
        Assert.Equal(1L, copy.Properties["TotalConnections"].Value);
        Assert.Equal($"127.0.0.1:{job.Port}", copy.Properties["Location"].Value);
        Assert.Equal("Running", copy.Properties["State"].Value?.ToString());
        string row = result.Output[1].ToString().Split('\n').Single(line => line.Contains($" {job.Port} "));
        Assert.Matches($@"^\s*{job.Id}\s+Running\s+127\.0\.0\.1\s+{job.Port}\s+0\s+2\s+4\.0 KiB\s+{Regex.Escape(_share)}\s*$", row.TrimEnd('\r'));
    }

    private FileShareServerJob StartServerThatServedOneDownload()
    {
        FileShareServerJob job = _session.StartServer(_share);
        _session.Run("param($Port, $Dest) Get-RemoteFile -Name file.txt -ComputerName 127.0.0.1 -Port $Port -Destination $Dest", new { job.Port, Dest = _temp.Join("dest") })
            .AssertNoErrors();
        // A verified download is two requests: the digest, then the bytes.
        Eventually.True(() => job.Requests == 2 && job.ActiveConnections == 0, "the download is logged and its connection closed");
        return job;
    }

    [Fact]
    public void StopJob_Synchronous_StopsFreesThePortAndRaisesStopJobCompleted()
    {
        FileShareServerJob job = _session.StartServer(_share);
        int completions = 0;
        job.StopJobCompleted += (_, _) => Interlocked.Increment(ref completions);

        Eventually.Within(job.StopJob, TimeSpan.FromSeconds(15), "StopJob()");

        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
        Assert.Equal(1, completions);
        Ports.AssertFree(job.Port);
    }

    [Fact]
    public void SuspendAndResume_AreRefused()
    {
        FileShareServerJob job = _session.StartServer(_share);

        // Suspend-Job and Resume-Job exist on Windows only; they call these, and the refusal is what reaches the user.
        NotSupportedException suspend = Assert.Throws<NotSupportedException>(job.SuspendJob);
        Assert.Contains("stop it instead", suspend.Message);
        Assert.Throws<NotSupportedException>(() => job.SuspendJob(force: true, reason: "test"));
        Assert.Throws<NotSupportedException>(job.ResumeJob);

        Assert.Equal(JobState.Running, job.JobStateInfo.State);
        Assert.True(Ports.Accepts(job.Port));
    }
}

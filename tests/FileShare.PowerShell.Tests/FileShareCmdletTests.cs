using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>Ctrl+C (PowerShell.Stop) on a cmdlet mid-operation: it returns promptly and leaves nothing half-done behind.</summary>
public sealed class FileShareCmdletTests : IDisposable
{
    private const long LargeFile = 1L << 30;
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;
    private readonly string _destination;
    private readonly FileShareServerJob _server;

    public FileShareCmdletTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        _destination = _temp.Join("dest");
        TestFiles.Sparse(_share, "large.bin", LargeFile);
        TestFiles.Write(_share, "small.txt", 12_345);
        _server = _session.StartServer(_share);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void StopMidDownload_ReturnsPromptly_KeepsOnlyTheHiddenPartialFile_AndTheServerKeepsServing()
    {
        string partial = Path.Join(_destination, ".large.bin.partial");
        using RunningInvocation download = _session.Begin("param($Port, $Dest) Get-RemoteFile -Name large.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { _server.Port, Dest = _destination });
        // The server hashes the 1 GiB file first, which on a loaded machine took more than 30 s once (other tests' first
        // hashes share the process's hash slots): a readiness poll, so the bound is only a hang guard.
        // Past the first piece (4 MiB), so one is verified: a download stopped before any keeps no partial file.
        Eventually.True(() => new FileInfo(partial) is { Exists: true, Length: > 8 * 1024 * 1024 } || download.IsCompleted, "the partial file is being written", TimeSpan.FromSeconds(120));
        Assert.False(download.IsCompleted, "The download finished before it could be stopped; the test file is too small for this machine.");

        // A hang guard only; a Stop that let the download run on is caught below by what it leaves behind.
        Eventually.Within(download.Shell.Stop, TimeSpan.FromSeconds(15), "PowerShell.Stop()");

        Assert.Equal(PSInvocationState.Stopped, download.Shell.InvocationStateInfo.State);
        Assert.Empty(download.Wait(TimeSpan.FromSeconds(1)).Errors);
        Assert.DoesNotContain("large.bin", TestFiles.List(_destination));
        // Nothing of the stopped call still reads from the server or writes the partial file.
        Eventually.True(() => _server.ActiveConnections == 0, "the stopped download's connection is closed");
        using (new FileStream(partial, FileMode.Open, FileAccess.ReadWrite, System.IO.FileShare.None))
        {
        }

        Assert.Equal(JobState.Running, _server.JobStateInfo.State);
        _session.Run("param($Port, $Dest) Get-RemoteFile -Name small.txt -ComputerName 127.0.0.1 -Port $Port -Destination $Dest", new { _server.Port, Dest = _destination })
            .AssertNoErrors();
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "small.txt")), TestFiles.Sha256(Path.Join(_destination, "small.txt")));
        Assert.Contains("small.txt", TestFiles.List(_destination));
    }

    [Fact]
    public void StopWhileWaitingForAServerToAnswer_ReturnsPromptly_WithoutAnError()
    {
        var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            using RunningInvocation listing = _session.Begin("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -TimeoutSec 60",
                new { Port = ((IPEndPoint)silent.LocalEndpoint).Port });
            Eventually.True(silent.Pending, "the client has connected");
            using Socket accepted = silent.AcceptSocket();

            // A hang guard: a Stop that did not cut the wait would sit out the 60 s -TimeoutSec.
            Eventually.Within(listing.Shell.Stop, TimeSpan.FromSeconds(15), "PowerShell.Stop()");

            Invocation result = listing.Wait(TimeSpan.FromSeconds(1));
            Assert.Equal(PSInvocationState.Stopped, listing.Shell.InvocationStateInfo.State);
            Assert.Empty(result.Errors);
            Assert.Empty(result.Output);
        }
        finally
        {
            silent.Stop();
        }
    }
}

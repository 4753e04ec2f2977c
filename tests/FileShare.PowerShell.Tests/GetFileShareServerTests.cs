using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>Get-FileShareServer: this session's servers and what they have done.</summary>
public sealed class GetFileShareServerTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;

    public GetFileShareServerTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        TestFiles.Write(_share, "a.bin", 300_000, seed: 1);
        TestFiles.Write(_share, "sub/b.bin", 1_048_577, seed: 2);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void AfterADownload_ReportsTheBytesAndRequestsItServed()
    {
        FileShareServerJob job = _session.StartServer(_share);
        _session.Run("param($Port, $Dest) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Recurse | Get-RemoteFile -Destination $Dest", new { job.Port, Dest = _temp.Join("dest") })
            .AssertNoErrors();
        Eventually.True(() => job.Requests == 5 && job.ActiveConnections == 0, "the listing and both digests and reads are logged");

        FileShareServerStatus status = Assert.Single(_session.Run("Get-FileShareServer").AssertNoErrors().Objects<FileShareServerStatus>());

        Assert.Equal(job.Id, status.JobId);
        Assert.Equal(job.Port, status.Port);
        Assert.Equal(job.Root, status.Root);
        Assert.Equal("127.0.0.1", status.BindAddress);
        Assert.Equal(300_000 + 1_048_577, status.BytesSent);
        Assert.Equal(5, status.Requests);
        Assert.Equal(0, status.ActiveConnections);
        Assert.True(status.Uptime > TimeSpan.Zero);
        Assert.Equal((long)(status.BytesSent / status.Uptime.TotalSeconds), status.BytesPerSecond);
    }

    [Fact]
    public void Port_FiltersAndStoppedServersAreHiddenUnlessAskedFor()
    {
        FileShareServerJob first = _session.StartServer(_share);
        FileShareServerJob second = _session.StartServer(_share);

        Assert.Equal([second.Port], _session.Run("param($Port) Get-FileShareServer -Port $Port", new { second.Port }).Objects<FileShareServerStatus>().Select(s => s.Port));

        _session.Run("param($Port) Stop-FileShareServer -Port $Port", new { first.Port }).AssertNoErrors();

        Assert.Equal([second.Port], _session.Run("Get-FileShareServer").Objects<FileShareServerStatus>().Select(s => s.Port));
        var all = _session.Run("Get-FileShareServer -IncludeStopped").Objects<FileShareServerStatus>().ToList();
        Assert.Equal(new[] { first.Port, second.Port }.Order(), all.Select(s => s.Port).Order());
        Assert.Equal(JobState.Stopped, all.Single(s => s.Port == first.Port).State);
    }

    [Theory]
    [InlineData("Get-FileShareServer")]
    [InlineData("Get-Job")]
    public void DefaultViews_FitEightyColumns_AndWrapTheRootRatherThanCutIt(string command)
    {
        string deepShare = _temp.Folder("a-share-with/a-name-long-enough/that-eighty-columns-cannot-hold-it");
        _session.StartServer(deepShare);

        string table = string.Concat(_session.Run($"{command} | Out-String -Width 80").Output.Select(o => o.ToString()));

        string[] lines = table.Split('\n').Select(line => line.TrimEnd()).Where(line => line.Length > 0).ToArray();
        Assert.All(lines, line => Assert.True(line.Length <= 80, line));
        int rootColumn = lines[0].IndexOf("Root", StringComparison.Ordinal);
        Assert.True(rootColumn > 0, lines[0]);
        Assert.Equal(deepShare, string.Concat(lines.Skip(2).Select(line => line.Length > rootColumn ? line[rootColumn..] : "")));
    }
}

using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>Tab completion as a user gets it: through TabExpansion2 in the session.</summary>
public sealed class CompletionTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;

    public CompletionTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        TestFiles.Write(_share, "photo 01.jpg", 10);
        TestFiles.Write(_share, "photo-02.jpg", 10);
        TestFiles.Write(_share, "readme.txt", 10);
        TestFiles.Write(_share, "pics/photo-03.jpg", 10);
        TestFiles.Write(_share, "[draft] photo.jpg", 10);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void StopFileShareServerPort_CompletesTheRunningServersOfThisSession()
    {
        FileShareServerJob running = _session.StartServer(_share);
        FileShareServerJob stopped = _session.StartServer(_share);
        _session.Run("param($Port) Stop-FileShareServer -Port $Port", new { stopped.Port }).AssertNoErrors();

        Assert.Equal([running.Port.ToString()], Complete("Stop-FileShareServer -Port "));
    }

    [Fact]
    public void RemoteName_CompletesFileNamesFromTheServerOnTheCommandLine()
    {
        FileShareServerJob job = _session.StartServer(_share);

        List<string> matches = Complete($"Get-RemoteFile -ComputerName 127.0.0.1 -Port {job.Port} -Name pho");

        Assert.Equal(["'photo 01.jpg'", "photo-02.jpg"], matches);
        Assert.Equal(["pics/photo-03.jpg"], Complete($"Get-RemoteFileList 127.0.0.1 -Port {job.Port} -Name pics/"));
    }

    [Fact]
    public void RemoteName_OffersANameWithWildcardCharactersEscapedWhereNamesAreWildcards_AndTheCompletedNameMatchesIt()
    {
        FileShareServerJob job = _session.StartServer(_share);

        Assert.Equal(["'[draft] photo.jpg'"], Complete($"Get-RemoteFile -ComputerName 127.0.0.1 -Port {job.Port} -Name [d"));
        string completed = Assert.Single(Complete($"Get-RemoteFileList -ComputerName 127.0.0.1 -Port {job.Port} -Name [d"));
        Assert.Equal("'`[draft`] photo.jpg'", completed);
        Invocation listed = _session.Run($"Get-RemoteFileList -ComputerName 127.0.0.1 -Port {job.Port} -Name {completed}").AssertNoErrors();
        Assert.Equal(["[draft] photo.jpg"], listed.Objects<RemoteFileInfo>().Select(f => f.Name));
    }

    [Fact]
    public void RemoteName_OffersNothingQuicklyWhenTheServerIsUnreachable()
    {
        // Not a system-chosen port: the previous test's server may just have had it, and the completer keeps a
        // server's listing for a few seconds, so it would still offer that server's names.
        int port = Ports.FreeRun(1);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        List<string> matches = Complete($"Get-RemoteFile -ComputerName 127.0.0.1 -Port {port} -Name pho");

        Assert.Empty(matches);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"completion took {clock.Elapsed}");
    }

    [Fact]
    public void RemoteName_CompletesFromAKeyedServer_WithTheKeyFileOnTheCommandLine()
    {
        FileShareServerJob job = _session.StartServer(_share, "-AccessKey (ConvertTo-SecureString 'tab key' -AsPlainText -Force)");
        string keyFile = Path.Join(_temp.Path, "tab.key");
        File.WriteAllText(keyFile, "tab key");

        Assert.Empty(Complete($"Get-RemoteFile -ComputerName 127.0.0.1 -Port {job.Port} -Name read"));
        Assert.Equal(["readme.txt"], Complete($"Get-RemoteFile -ComputerName 127.0.0.1 -Port {job.Port} -AccessKeyPath '{keyFile}' -Name read"));
    }

    [Fact]
    public void RemotePath_CompletesTheServersFolders_NotLocalOnes()
    {
        FileShareServerJob job = _session.StartServer(_share);
        TestFiles.Write(_share, "pics/2024/photo-04.jpg", 10);
        Directory.CreateDirectory(_temp.Join("pictures-here"));

        Assert.Equal(["pics", "pics/2024"], Complete($"Get-RemoteFileList -ComputerName 127.0.0.1 -Port {job.Port} -Path pi"));
    }

    [Fact]
    public void RemoteName_ReadsARelativeKeyFileFromTheSessionsLocation()
    {
        FileShareServerJob job = _session.StartServer(_share, "-AccessKey (ConvertTo-SecureString 'tab key' -AsPlainText -Force)");
        File.WriteAllText(Path.Join(_temp.Folder("keys"), "tab.key"), "tab key");
        _session.Run("param($Path) Set-Location $Path", new { _temp.Path }).AssertNoErrors();

        Assert.Equal(["readme.txt"], Complete($"Get-RemoteFile -ComputerName 127.0.0.1 -Port {job.Port} -AccessKeyPath keys/tab.key -Name read"));
    }

    private List<string> Complete(string input) =>
        _session.Run("param($Text) (TabExpansion2 -inputScript $Text -cursorColumn $Text.Length).CompletionMatches", new { Text = input })
            .AssertNoErrors()
            .Objects<CompletionResult>()
            .Select(m => m.CompletionText)
            .ToList();
}

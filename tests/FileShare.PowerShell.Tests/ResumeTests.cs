using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>
/// Get-RemoteFile stopped mid-file (PowerShell.Stop, as Ctrl+C does) keeps its verified pieces, and the next run
/// fetches only the rest: the server's own byte count proves it. A relay paces the first run so "mid-file" is real.
/// </summary>
public sealed class ResumeTests : IDisposable
{
    private const int Length = 40 << 20;
    private const long RelayBytesPerSecond = 12L << 20;
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;
    private readonly string _destination;
    private readonly FileShareServerJob _server;

    public ResumeTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        _destination = _temp.Join("dest");
        TestFiles.Write(_share, "data.bin", Length, seed: 11);
        _server = _session.StartServer(_share);

        // Hashed now, so the relay's pacing (counted from connection time) is not spent waiting for the first hash.
        _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Hash", new { _server.Port }).AssertNoErrors();
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void StoppedMidFile_TheNextRunFetchesOnlyTheMissingPieces_AndTheFileIsIntact()
    {
        StopMidFile().Dispose();
        long sentBefore = _server.BytesSent;

        Invocation second = Download("-PassThru -Verbose").AssertNoErrors();

        PSObject file = Assert.Single(second.Output);
        long resumed = (long)file.Properties["BytesResumed"].Value;
        Assert.InRange(resumed, 4L << 20, Length - 1);
        Assert.Equal(Length - resumed, SentSince(sentBefore));
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "data.bin")), TestFiles.Sha256(Path.Join(_destination, "data.bin")));
        Assert.Contains(second.Verbose, v => v.Message.Contains("'data.bin': resuming with"));
        Assert.Equal(["data.bin"], TestFiles.List(_destination));
    }

    [Theory]
    [InlineData("-Resume:$false", false, "starting over, -Resume is off")]
    [InlineData("", true, "starting over, the source changed since the partial download")]
    public void AStartOver_FetchesTheWholeFile_AndVerboseSaysWhy(string extra, bool rewriteSource, string why)
    {
        StopMidFile().Dispose();
        if (rewriteSource)
        {
            TestFiles.Write(_share, "data.bin", Length, seed: 12);
        }

        long sentBefore = _server.BytesSent;

        Invocation second = Download(extra + " -Verbose").AssertNoErrors();

        Assert.Equal(Length, SentSince(sentBefore));
        Assert.Contains(second.Verbose, v => v.Message.Contains(why));
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "data.bin")), TestFiles.Sha256(Path.Join(_destination, "data.bin")));
    }

    [Theory]
    [InlineData(3 << 20)]
    [InlineData(100 << 20)] // past the old record's 32-piece word of its piece map
    public void ASourceAppendedToMeanwhile_KeepsTheVerifiedPiecesItStillHas_AndFetchesTheRest(int appendedBytes)
    {
        StopMidFile().Dispose();
        byte[] appended = new byte[appendedBytes];
        new Random(13).NextBytes(appended);
        using (FileStream source = File.Open(Path.Join(_share, "data.bin"), FileMode.Append))
        {
            source.Write(appended);
        }

        long sentBefore = _server.BytesSent;

        Invocation second = Download("-PassThru -Verbose").AssertNoErrors();

        long resumed = (long)Assert.Single(second.Output).Properties["BytesResumed"].Value;
        Assert.InRange(resumed, 4L << 20, Length - 1);
        Assert.Equal(Length + appended.Length - resumed, SentSince(sentBefore));
        Assert.Contains(second.Verbose, v => v.Message.Contains("the source changed since the partial download") && v.Message.Contains("pieces that are still the same"));
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "data.bin")), TestFiles.Sha256(Path.Join(_destination, "data.bin")));
        Assert.Equal(["data.bin"], TestFiles.List(_destination));
    }

    [Fact]
    public void CleanPartial_RemovesAPartialWhoseSourceIsGone_ButNotUnderWhatIf_AndKeepsOneStillOffered()
    {
        // The partial file records the relay as its source, so the relay stays up for the source to be asked.
        using ThrottledRelay source = StopMidFile();
        Invocation kept = CleanPartial();
        Assert.Equal([".data.bin.partial", ".data.bin.partial.state"], TestFiles.List(_destination));
        Assert.Contains(kept.Verbose, v => v.Message.Contains("still offers the same content"));

        File.Delete(Path.Join(_share, "data.bin"));
        _session.Run("param($Dest) Get-RemoteFile -CleanPartial -Destination $Dest -WhatIf", new { Dest = _destination }).AssertNoErrors();
        Assert.Equal([".data.bin.partial", ".data.bin.partial.state"], TestFiles.List(_destination));
        Invocation cleaned = CleanPartial();

        Assert.Empty(TestFiles.List(_destination));
        Assert.Contains(cleaned.Verbose, v => v.Message.Contains("no longer has it"));
    }

    [Fact]
    public void CleanPartial_KeepsAPartialWhoseSourceCannotBeReached()
    {
        StopMidFile().Dispose();

        Invocation result = CleanPartial();

        Assert.Equal([".data.bin.partial", ".data.bin.partial.state"], TestFiles.List(_destination));
        Assert.Contains(result.Verbose, v => v.Message.Contains("none of its sources"));
    }

    [Fact]
    public void CleanPartial_KeepsAPartialWhenOneSourceSaysItIsGone_ButAnotherCannotBeAsked()
    {
        using var unreachable = new ThrottledRelay(_server.Port, RelayBytesPerSecond);
        using ThrottledRelay answering = StopMidFile(secondSource: unreachable);
        unreachable.Dispose();
        File.Delete(Path.Join(_share, "data.bin"));

        Invocation result = CleanPartial();

        Assert.Equal([".data.bin.partial", ".data.bin.partial.state"], TestFiles.List(_destination));
        Assert.Contains(result.Verbose, v => v.Message.Contains($"127.0.0.1:{unreachable.Port}") && v.Message.Contains("could not be asked"));
    }

    [Fact]
    public void CleanPartial_RemovesAPartialNameWithoutAStateRecord_OnlyWithForce_AndPassThruNamesIt()
    {
        Directory.CreateDirectory(_destination);
        string unrecorded = Path.Join(_destination, ".settings.json.tmp.partial");
        File.WriteAllText(unrecorded, "maybe another program's");

        Invocation kept = CleanPartial();
        Assert.True(File.Exists(unrecorded));
        Assert.Contains(kept.Verbose, v => v.Message.Contains(unrecorded) && v.Message.Contains("-Force"));

        Invocation forced = _session.Run("param($Dest) Get-RemoteFile -CleanPartial -Destination $Dest -Force -PassThru", new { Dest = _destination }).AssertNoErrors();

        Assert.Equal([unrecorded], forced.Objects<string>());
        Assert.Empty(TestFiles.List(_destination));
    }

    [Fact]
    public void CleanPartial_OfAFolderThatIsNotThere_IsDestinationNotFound()
    {
        string missing = _temp.Join("mistyped");

        Invocation result = _session.Run("param($Dest) Get-RemoteFile -CleanPartial -Destination $Dest", new { Dest = missing });

        ErrorRecord error = result.SingleError("DestinationNotFound", ErrorCategory.ObjectNotFound);
        Assert.IsType<ItemNotFoundException>(error.Exception);
        Assert.Equal(missing, error.TargetObject);
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public void AnInterruptedDownload_SharedByAServer_IsListedAsAPartialCopy_AndItsTableRowSaysSo()
    {
        StopMidFile().Dispose();
        FileShareServerJob sharing = _session.StartServer(_destination);

        RemoteFileInfo listed = Assert.Single(_session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { sharing.Port })
            .AssertNoErrors().Objects<RemoteFileInfo>());
        string table = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port | Out-String -Width 200", new { sharing.Port })
            .AssertNoErrors().Objects<string>().Single();

        Assert.Equal(("data.bin", (long)Length, true), (listed.Name, listed.Length, listed.IsPartial));
        Assert.InRange(listed.PiecesHeld!.Value, 1, listed.PieceCount!.Value - 1);
        Assert.Contains($"data.bin (partial: {listed.PiecesHeld} of {listed.PieceCount} pieces)", table);
    }

    private Invocation CleanPartial() =>
        _session.Run("param($Dest) Get-RemoteFile -CleanPartial -Destination $Dest -Verbose", new { Dest = _destination }).AssertNoErrors();

    /// <summary>
    /// Starts a download paced by a relay, stops it once some pieces are verified and recorded, and waits for the
    /// server to let go. Returns the relay (the partial file's recorded source), which the caller disposes.
    /// </summary>
    private ThrottledRelay StopMidFile(ThrottledRelay? secondSource = null)
    {
        var relay = new ThrottledRelay(_server.Port, RelayBytesPerSecond);
        string source = secondSource is null ? "" : $"-Source 127.0.0.1:{secondSource.Port}";
        using RunningInvocation download = _session.Begin($"param($Port, $Dest) Get-RemoteFile -Name data.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest {source}",
            new { relay.Port, Dest = _destination });
        Eventually.True(() => File.Exists(Path.Join(_destination, ".data.bin.partial.state")) || download.IsCompleted, "the first verified pieces are recorded");
        Assert.False(download.IsCompleted, "The download finished before it could be stopped.");

        Eventually.Within(download.Shell.Stop, TimeSpan.FromSeconds(10), "PowerShell.Stop()");

        Assert.Equal([".data.bin.partial", ".data.bin.partial.state"], TestFiles.List(_destination));
        Eventually.True(() => _server.ActiveConnections == 0, "the server has closed the stopped download's connection");
        return relay;
    }

    /// <summary>
    /// Bytes the server has sent since <paramref name="before"/>, once it has let go of the download's connection: it
    /// counts a chunk when the kernel has taken all of it, which can be just after the client already holds every byte
    /// (a CI run read 22,347,776 of 41,943,040).
    /// </summary>
    private long SentSince(long before)
    {
        Eventually.True(() => _server.ActiveConnections == 0, "the server has closed the download's connection");
        return _server.BytesSent - before;
    }

    private Invocation Download(string extra) =>
        _session.Run($"param($Port, $Dest) Get-RemoteFile -Name data.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest {extra}",
            new { _server.Port, Dest = _destination });
}

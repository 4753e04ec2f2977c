using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

public sealed class GetRemoteFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;
    private readonly string _destination;
    private readonly FileShareServerJob _server;

    public GetRemoteFileTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        _destination = _temp.Join("dest");
        TestFiles.Write(_share, "empty.bin", 0);
        TestFiles.Write(_share, "one byte.txt", 1);
        TestFiles.Write(_share, "with space and ünïcødé ✓.txt", 4_321);
        TestFiles.Write(_share, "medium.bin", 3 * 1024 * 1024 + 17);
        TestFiles.Write(_share, "sub/inner.txt", 777);
        TestFiles.Write(_share, "sub/deeper/déjà vu.bin", 65_536);
        _server = _session.StartServer(_share);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void ListingPipedIn_BindsByPropertyName_AndRecreatesTheTreeByteForByte()
    {
        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Recurse | Get-RemoteFile -Destination $Dest",
            new { _server.Port, Dest = _destination }).AssertNoErrors();

        Assert.Empty(result.Output);
        TestFiles.AssertSameTree(_share, _destination);
    }

    [Theory]
    [InlineData("'one byte.txt', 'sub/inner.txt' | Get-RemoteFile -ComputerName 127.0.0.1 -Port $Port -Destination $Dest")]
    [InlineData("Get-RemoteFile 'one byte.txt', 'sub/inner.txt' -ComputerName \"127.0.0.1:$Port\" -Destination $Dest")]
    [InlineData("Get-RemoteFile 'one byte.txt', 'sub/inner.txt' \"127.0.0.1:$Port\" $Dest -Port 1")]
    public void NamesPipedAsText_OrAServerGivenAsHostColonPort_Download(string command)
    {
        _session.Run($"param($Port, $Dest) {command}", new { _server.Port, Dest = _destination }).AssertNoErrors();

        Assert.Equal(["one byte.txt", "sub/inner.txt"], TestFiles.List(_destination));
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "sub", "inner.txt")), TestFiles.Sha256(Path.Join(_destination, "sub", "inner.txt")));
    }

    [Fact]
    public void OnlyASource_IsTheOneServerAsked_NotAlsoTheDefaultLocalhost5000()
    {
        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile 'one byte.txt' -Source \"127.0.0.1:$Port\" -Destination $Dest -Verbose 3>&1",
            new { _server.Port, Dest = _destination }).AssertNoErrors();

        Assert.Empty(result.Objects<WarningRecord>());
        Assert.DoesNotContain(result.Verbose, record => record.Message.Contains("localhost:5000", StringComparison.Ordinal));
        Assert.Contains(result.Verbose, record => record.Message.Contains($"from 127.0.0.1:{_server.Port}", StringComparison.Ordinal));
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "one byte.txt")), TestFiles.Sha256(Path.Join(_destination, "one byte.txt")));
    }

    [Fact]
    public void ASourceThatIsNotHostColonPort_IsOneTerminatingInvalidSource_AndNothingIsAsked()
    {
        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile 'one byte.txt' -ComputerName 127.0.0.1 -Port $Port -Source 'no-port-here' -Destination $Dest",
            new { _server.Port, Dest = _destination });

        ErrorRecord error = result.SingleError("InvalidSource", ErrorCategory.InvalidArgument);
        Assert.Equal("no-port-here", error.TargetObject);
        Assert.False(Directory.Exists(_destination), "A bad argument should change nothing, not even make the destination folder.");
    }

    [Fact]
    public void ASourceThatIsAUrl_IsInvalidSource_SayingWhatToWriteInstead()
    {
        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile 'one byte.txt' -Source \"http://127.0.0.1:$Port\" -Destination $Dest",
            new { _server.Port, Dest = _destination });

        ErrorRecord error = result.SingleError("InvalidSource", ErrorCategory.InvalidArgument);
        Assert.Contains($"is a URL; name the computer alone, with its port if that is not -Port: '127.0.0.1:{_server.Port}'", error.Exception.Message);
        Assert.False(Directory.Exists(_destination));
    }

    [Theory]
    [InlineData("env:/fetched")]
    [InlineData("variable:/fetched")]
    public void ADestinationOnAnotherProvider_IsOneTerminatingInvalidDestination_AndNothingIsCreated(string destination)
    {
        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile 'one byte.txt' -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { _server.Port, Dest = destination });

        ErrorRecord error = result.SingleError("InvalidDestination", ErrorCategory.InvalidArgument);
        Assert.IsAssignableFrom<ArgumentException>(error.Exception);
        Assert.Equal(destination, error.TargetObject);
        Assert.False(Directory.Exists(Path.Join(Environment.CurrentDirectory, "fetched")), "a folder was made in the process's own folder");
        Assert.False(Directory.Exists(_temp.Join("fetched")), "a folder was made in the session's folder");
        Assert.Equal(0, _server.Requests);
    }

    [Fact]
    public void TheDefaultDestination_FromALocationOnAnotherProvider_IsInvalidDestination_SayingWhy()
    {
        Invocation result = _session.Run("param($Port) Push-Location env:; try { Get-RemoteFile 'one byte.txt' -ComputerName 127.0.0.1 -Port $Port } finally { Pop-Location }",
            new { _server.Port });

        ErrorRecord error = result.SingleError("InvalidDestination", ErrorCategory.InvalidArgument);
        Assert.Contains("default destination 'localStorage'", error.Exception.Message);
        Assert.Contains("current location", error.Exception.Message);
        Assert.Equal(0, _server.Requests);
    }

    [Fact]
    public void EmptyInput_MakesNoDestinationFolder()
    {
        _session.Run("param($Port, $Dest) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Name '*.nothing' | Get-RemoteFile -Destination $Dest; @() | Get-RemoteFile -Destination $Dest",
            new { _server.Port, Dest = _destination }).AssertNoErrors();

        Assert.False(Directory.Exists(_destination), "a download of nothing made the destination folder");
    }

    [Fact]
    public void WhatIf_DownloadsNothing_AsksNoServer_AndMakesNoFolder()
    {
        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Recurse | Get-RemoteFile -Destination $Dest -WhatIf",
            new { _server.Port, Dest = _destination }).AssertNoErrors();

        Assert.Empty(result.Output);
        Assert.False(Directory.Exists(_destination), "-WhatIf made the destination folder");
        Assert.Equal(1, _server.Requests);
    }

    [Theory]
    [InlineData("invoice\u202Efdp.exe", "invoice\\u202Efdp.exe")]
    [InlineData("c1\u009B31m.txt", "c1\\x9B31m.txt")]
    public void ANameWithABidiOrControlCharacter_IsSpelledOutInTheError_NeverShownRaw(string name, string spelled)
    {
        Invocation result = _session.Run("param($Port, $Dest, $Name) Get-RemoteFile -Name $Name -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { _server.Port, Dest = _destination, Name = name });

        ErrorRecord error = result.SingleError("InvalidRemotePath", ErrorCategory.InvalidData);
        Assert.Contains(spelled, error.Exception.Message);
        Assert.DoesNotContain(error.Exception.Message, c => char.IsControl(c) || FileShare.SharePath.IsBidiControl(c));
    }

    [Fact]
    public void PassThru_WritesAFileInfoPerDownloadedFile()
    {
        FileInfo[] files = Download(["empty.bin", "sub/inner.txt"], "-PassThru").AssertNoErrors().Objects<FileInfo>().ToArray();

        Assert.Equal(
            [Path.Join(_destination, "empty.bin"), Path.Join(_destination, "sub", "inner.txt")],
            files.Select(f => f.FullName).Order(StringComparer.Ordinal));
        Assert.All(files, f => Assert.True(f.Exists));
        Assert.Equal([0L, 777L], files.OrderBy(f => f.FullName, StringComparer.Ordinal).Select(f => f.Length));
    }

    [Fact]
    public void NoClobber_LeavesAnExistingFileAlone_AndReportsDestinationExists()
    {
        string existing = TestFiles.Write(_destination, "sub/inner.txt", 50, seed: 42);
        string before = TestFiles.Sha256(existing);

        Invocation result = Download(["sub/inner.txt", "one byte.txt"], "-NoClobber");

        ErrorRecord error = result.SingleError("DestinationExists", ErrorCategory.ResourceExists);
        Assert.Contains(existing, error.Exception.Message);
        Assert.Equal("sub/inner.txt", error.TargetObject);
        Assert.Equal(before, TestFiles.Sha256(existing));
        Assert.Equal(["one byte.txt", "sub/inner.txt"], TestFiles.List(_destination));
    }

    [Fact]
    public void WithoutNoClobber_AnExistingFileIsReplaced()
    {
        string existing = TestFiles.Write(_destination, "sub/inner.txt", 5_000, seed: 42);

        Download(["sub/inner.txt"]).AssertNoErrors();

        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "sub", "inner.txt")), TestFiles.Sha256(existing));
        Assert.Equal(["sub/inner.txt"], TestFiles.List(_destination));
    }

    [Fact]
    public void AReadOnlyDestination_IsDestinationReadOnlyAndKept_AnIdenticalOneIsSkipped_AndForceReplacesIt()
    {
        string differs = TestFiles.Write(_destination, "sub/inner.txt", 50, seed: 42);
        string before = TestFiles.Sha256(differs);
        string identical = Path.Join(_destination, "one byte.txt");
        File.Copy(Path.Join(_share, "one byte.txt"), identical);
        File.SetAttributes(differs, FileAttributes.ReadOnly);
        File.SetAttributes(identical, FileAttributes.ReadOnly);

        Invocation refused = Download(["sub/inner.txt", "one byte.txt"]);

        ErrorRecord error = refused.SingleError("DestinationReadOnly", ErrorCategory.PermissionDenied);
        Assert.Contains($"'{differs}' is read-only", error.Exception.Message);
        Assert.Contains("-Force", error.Exception.Message);
        Assert.Equal(before, TestFiles.Sha256(differs));
        Assert.Equal(["one byte.txt", "sub/inner.txt"], TestFiles.List(_destination));

        Download(["sub/inner.txt"], "-Force").AssertNoErrors();

        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "sub", "inner.txt")), TestFiles.Sha256(differs));
        Assert.Equal(["one byte.txt", "sub/inner.txt"], TestFiles.List(_destination));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-WhatIf")]
    public void DestinationThatIsAFile_IsOneDestinationWriteFailed_NamingTheFolder_AndNothingIsAsked(string whatIf)
    {
        string blocked = _temp.Join("blocked");
        File.WriteAllText(blocked, "a file where the folder should be");
        long requestsBefore = _server.Requests;

        Invocation result = _session.Run($"param($Port, $Dest) Get-RemoteFile -Name 'one byte.txt' -ComputerName 127.0.0.1 -Port $Port -Destination $Dest {whatIf}",
            new { _server.Port, Dest = blocked });

        ErrorRecord error = result.SingleError("DestinationWriteFailed", ErrorCategory.WriteError);
        Assert.IsAssignableFrom<IOException>(error.Exception);
        Assert.Equal(blocked, error.TargetObject);
        Assert.Contains($"'{blocked}' is a file, not a folder", error.Exception.Message);
        Assert.Equal("a file where the folder should be", File.ReadAllText(blocked));
        Assert.Equal(requestsBefore, _server.Requests);
    }

    [Fact]
    public void MissingFile_IsRemoteFileNotFound_NamingFileAndServer_AndOtherFilesStillArrive()
    {
        Invocation result = Download(["no-such-file.txt", "one byte.txt"]);

        ErrorRecord error = result.SingleError("RemoteFileNotFound", ErrorCategory.ObjectNotFound);
        Assert.Contains("no-such-file.txt", error.Exception.Message);
        Assert.Contains($"127.0.0.1:{_server.Port}", error.Exception.Message);
        Assert.Equal(["one byte.txt"], TestFiles.List(_destination));
    }

    [Fact]
    public void UnreachableServer_IsServerUnreachable_NamingTheServerAndEachFile_AndWritesNothing()
    {
        int dead = Ports.Free();

        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile -Name 'one byte.txt', 'sub/inner.txt' -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { Port = dead, Dest = _destination });

        Assert.Equal(2, result.Errors.Count);
        Assert.All(result.Errors, error =>
        {
            Invocation.AssertError(error, "ServerUnreachable", ErrorCategory.ConnectionError);
            Assert.Contains($"127.0.0.1:{dead}", error.Exception.Message);
        });
        // What the console shows: the file each error cost, not only the server.
        Assert.Equal(["'one byte.txt' was not downloaded", "'sub/inner.txt' was not downloaded"],
            result.Errors.Select(error => error.ToString().Split(':')[0]).Order());
        Assert.Empty(TestFiles.List(_destination));
    }

    [Fact]
    public void SameNameFromTwoServers_TheSecondToArriveIsDestinationConflict_NamingBoth_AndTheFirstIsIntact()
    {
        string otherShare = _temp.Folder("other");
        TestFiles.Write(otherShare, "sub/inner.txt", 999, seed: 7);
        FileShareServerJob other = _session.StartServer(otherShare);

        Invocation result = _session.Run(
            "param($First, $Second, $Dest) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $First, $Second -Name sub/inner.txt -Recurse | Get-RemoteFile -Destination $Dest",
            new { First = _server.Port, Second = other.Port, Dest = _destination });

        // The listing writes each server's files as it answers, so either may come first down the pipeline.
        ErrorRecord error = result.SingleError("DestinationConflict", ErrorCategory.ResourceExists);
        Assert.Equal(["sub/inner.txt"], TestFiles.List(_destination));
        string downloaded = TestFiles.Sha256(Path.Join(_destination, "sub", "inner.txt"));
        (int kept, int refused) = downloaded == TestFiles.Sha256(Path.Join(_share, "sub", "inner.txt")) ? (_server.Port, other.Port)
            : downloaded == TestFiles.Sha256(Path.Join(otherShare, "sub", "inner.txt")) ? (other.Port, _server.Port)
            : throw new Xunit.Sdk.XunitException("The downloaded file is neither server's copy.");
        Assert.Contains($"'sub/inner.txt' from 127.0.0.1:{refused} has different content than the copy from 127.0.0.1:{kept} being downloaded", error.Exception.Message);
    }

    [Fact]
    public void ThrottleLimit8_TwentyFiles_AllArriveIntact()
    {
        string many = _temp.Folder("many");
        for (int i = 0; i < 20; i++)
        {
            TestFiles.Write(many, $"f{i:00}.bin", 10_000 + (i * 37_911));
        }

        FileShareServerJob server = _session.StartServer(many);
        _session.Run("param($Port, $Dest) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port | Get-RemoteFile -Destination $Dest -ThrottleLimit 8",
            new { server.Port, Dest = _destination }).AssertNoErrors();

        TestFiles.AssertSameTree(many, _destination);
    }

    [Fact]
    public void ThrottleLimit1_SmallFilesOneAfterAnother_ARefusedFileAmongRequestsSentAhead_HasItsOwnError_TheOthersArriveWhole_NothingPartialLeft()
    {
        string many = _temp.Folder("small");
        string[] present = Enumerable.Range(0, 30).Select(i => $"f{i:00}.bin").ToArray();
        foreach (string name in present)
        {
            TestFiles.Write(many, name, 4096);
        }

        File.CreateSymbolicLink(Path.Join(many, "link.txt"), TestFiles.Write(_temp.Folder("private"), "secret.txt", 100));
        FileShareServerJob server = _session.StartServer(many);
        string[] names = [.. present[..10], "missing.bin", .. present[10..20], "link.txt", .. present[20..]];

        Invocation result = _session.Run("param($Names, $Port, $Dest) Get-RemoteFile -Name $Names -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -ThrottleLimit 1",
            new { Names = names, server.Port, Dest = _destination });

        Assert.Equal(2, result.Errors.Count);
        Invocation.AssertError(result.Errors[0], "RemoteFileNotFound", ErrorCategory.ObjectNotFound);
        Assert.Contains("missing.bin", result.Errors[0].Exception.Message);
        Invocation.AssertError(result.Errors[1], "RemotePathRefused", ErrorCategory.PermissionDenied);
        Assert.Contains("link.txt", result.Errors[1].Exception.Message);
        Assert.Equal(present, TestFiles.List(_destination));
        Assert.All(present, name => Assert.Equal(TestFiles.Sha256(Path.Join(many, name)), TestFiles.Sha256(Path.Join(_destination, name))));
    }

    [Fact]
    public void DefaultDestination_IsLocalStorageUnderTheSessionLocation()
    {
        string location = _temp.Folder("elsewhere");
        _session.Run("param($Path) Set-Location -LiteralPath $Path", new { Path = location }).AssertNoErrors();

        _session.Run("param($Port) Get-RemoteFile -Name sub/inner.txt -ComputerName 127.0.0.1 -Port $Port", new { _server.Port }).AssertNoErrors();

        string expected = Path.Join(location, "localStorage", "sub", "inner.txt");
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "sub", "inner.txt")), TestFiles.Sha256(expected));
        Assert.Equal(["localStorage/sub/inner.txt"], TestFiles.List(location));
    }

    [Theory]
    [InlineData("../evil")]
    [InlineData("sub/../../evil")]
    [InlineData("..")]
    [InlineData("/evil")]
    public void NameLeavingTheDestination_IsInvalidRemotePath_AndNothingIsWritten(string name)
    {
        string work = _temp.Folder("work");
        string destination = Path.Join(work, "dest");
        TestFiles.Write(_share, "evil", 10);

        Invocation result = _session.Run("param($Name, $Port, $Dest) Get-RemoteFile -Name $Name -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { Name = name, _server.Port, Dest = destination });

        ErrorRecord error = result.SingleError("InvalidRemotePath", ErrorCategory.InvalidData);
        Assert.Contains($"'{name}'", error.Exception.Message);
        Assert.Empty(TestFiles.List(work));
        Assert.False(File.Exists(_temp.Join("evil")));
        Assert.False(File.Exists("/evil"));
    }

    [Fact]
    public void LinkLeadingOutOfTheShare_IsRemotePathRefused_AndNothingIsWritten()
    {
        string secret = TestFiles.Write(_temp.Folder("private"), "secret.txt", 100);
        File.CreateSymbolicLink(Path.Join(_share, "link.txt"), secret);

        Invocation result = Download(["link.txt"]);

        ErrorRecord error = result.SingleError("RemotePathRefused", ErrorCategory.PermissionDenied);
        Assert.Contains("link.txt", error.Exception.Message);
        Assert.Contains($"127.0.0.1:{_server.Port}", error.Exception.Message);
        Assert.Empty(TestFiles.List(_destination));
    }

    [Fact]
    public void AFileAlreadyPresentWithTheSameHash_IsSkipped_UnlessForce()
    {
        Download(["medium.bin"]).AssertNoErrors();
        long served = _server.BytesSent;
        // The same bytes under another write time: skipped (the server sends nothing), and given the server's time
        // as a download would.
        string local = Path.Join(_destination, "medium.bin");
        File.SetLastWriteTimeUtc(local, new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc));

        Invocation again = Download(["medium.bin"], "-Verbose").AssertNoErrors();

        Assert.Contains(again.Verbose, v => v.Message.Contains("Skipped") && v.Message.Contains(TestFiles.Sha256(Path.Join(_share, "medium.bin"))));
        Assert.Equal(served, _server.BytesSent);
        Assert.Equal(File.GetLastWriteTimeUtc(Path.Join(_share, "medium.bin")), File.GetLastWriteTimeUtc(local));

        Download(["medium.bin"], "-Force").AssertNoErrors();
        Eventually.True(() => _server.BytesSent == 2 * served, "-Force downloaded the file again");
        Assert.Equal(TestFiles.Sha256(Path.Join(_share, "medium.bin")), TestFiles.Sha256(local));
        Assert.Equal(File.GetLastWriteTimeUtc(Path.Join(_share, "medium.bin")), File.GetLastWriteTimeUtc(local));
    }

    [Fact]
    public void ListingWithHash_GivesEachFilesSha256_AsGetFileHashShowsIt()
    {
        Invocation listing = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Recurse -Hash", new { _server.Port }).AssertNoErrors();

        RemoteFileInfo[] files = listing.Objects<RemoteFileInfo>().ToArray();
        Assert.Equal(6, files.Length);
        Assert.All(files, f => Assert.Equal(TestFiles.Sha256(Path.Join(_share, f.Name)), f.Hash));
        Assert.All(_session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { _server.Port }).Objects<RemoteFileInfo>(), f => Assert.Null(f.Hash));
    }

    private Invocation Download(string[] names, string arguments = "") =>
        _session.Run($"param($Names, $Port, $Dest) Get-RemoteFile -Name $Names -ComputerName 127.0.0.1 -Port $Port -Destination $Dest {arguments}",
            new { Names = names, _server.Port, Dest = _destination });
}

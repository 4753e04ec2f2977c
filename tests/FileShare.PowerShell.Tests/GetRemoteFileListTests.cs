using System.Management.Automation;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

public sealed class GetRemoteFileListTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;
    private readonly FileShareServerJob _server;

    public GetRemoteFileListTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        TestFiles.Write(_share, "readme.txt", 1_536);
        TestFiles.Write(_share, "data.bin", 10);
        TestFiles.Write(_share, "empty.txt", 0);
        TestFiles.Write(_share, "sub/inner.txt", 20);
        TestFiles.Write(_share, "sub/deeper/deep.bin", 30);
        File.SetLastWriteTimeUtc(Path.Join(_share, "readme.txt"), new DateTime(2024, 5, 6, 7, 8, 9, DateTimeKind.Utc));
        _server = _session.StartServer(_share);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void ListsTheTopFolderWithSizeTimeAndServer()
    {
        RemoteFileInfo[] files = List().AssertNoErrors().Objects<RemoteFileInfo>().ToArray();

        Assert.Equal(["data.bin", "empty.txt", "readme.txt"], files.Select(f => f.Name).Order(StringComparer.Ordinal));
        RemoteFileInfo readme = files.Single(f => f.Name == "readme.txt");
        Assert.Equal(1_536, readme.Length);
        Assert.Equal(new DateTime(2024, 5, 6, 7, 8, 9, DateTimeKind.Utc), readme.LastWriteTimeUtc);
        Assert.Equal(new DateTime(2024, 5, 6, 7, 8, 9, DateTimeKind.Utc).ToLocalTime(), readme.LastWriteTime);
        Assert.Equal(0, files.Single(f => f.Name == "empty.txt").Length);
        Assert.All(files, f => Assert.Equal(("127.0.0.1", _server.Port), (f.ComputerName, f.Port)));
    }

    [Fact]
    public void DefaultTable_ShowsServerSizeLocalTimeAndName()
    {
        Invocation listed = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Name readme.txt", new { _server.Port }).AssertNoErrors();
        string table = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Name readme.txt | Out-String -Width 200", new { _server.Port })
            .AssertNoErrors().Objects<string>().Single();

        RemoteFileInfo file = Assert.Single(listed.Objects<RemoteFileInfo>());
        Assert.Equal(DateTimeKind.Local, file.LastWriteTime.Kind);
        string local = file.LastWriteTimeUtc.ToLocalTime().ToString("yyyy-MM-dd HH:mm");
        string[] lines = table.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(["ComputerName", "Port", "Size", "LastWriteTime", "Name"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["127.0.0.1", _server.Port.ToString(), "1.5", "KiB", .. local.Split(' '), "readme.txt"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Recurse_ListsSubfolderFilesWithSlashSeparatedNames()
    {
        string[] names = List("-Recurse").AssertNoErrors().Objects<RemoteFileInfo>().Select(f => f.Name).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(["data.bin", "empty.txt", "readme.txt", "sub/deeper/deep.bin", "sub/inner.txt"], names);
    }

    [Theory]
    [InlineData("-Name *.txt", new[] { "empty.txt", "readme.txt" })]
    [InlineData("-Name *.TXT", new[] { "empty.txt", "readme.txt" })]
    [InlineData("-Name *.bin -Recurse", new[] { "data.bin", "sub/deeper/deep.bin" })]
    [InlineData("-Name sub/* -Recurse", new[] { "sub/deeper/deep.bin", "sub/inner.txt" })]
    [InlineData("-Name data.bin, readme*", new[] { "data.bin", "readme.txt" })]
    [InlineData("-Name nothing*", new string[0])]
    [InlineData("-Name deep* -Recurse", new[] { "sub/deeper/deep.bin" })]
    [InlineData("-Name inner.tx? -Recurse", new[] { "sub/inner.txt" })]
    public void Name_FiltersByWildcardOnTheRelativeName_OrWithoutASlashOnItsLastPart(string arguments, string[] expected)
    {
        string[] names = List(arguments).AssertNoErrors().Objects<RemoteFileInfo>().Select(f => f.Name).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(expected, names);
    }

    [Fact]
    public void NameWithoutWildcards_ThatNoServerLists_IsRemoteFileNotFound_WhileAPatternMayMatchNothing()
    {
        Invocation result = List("-Name readme.txt, nope.txt, *.zzz, SUB/INNER.TXT");

        Assert.Equal(["readme.txt"], result.Objects<RemoteFileInfo>().Select(f => f.Name));
        ErrorRecord[] errors = [.. result.Errors];
        Assert.Equal(["nope.txt", "SUB/INNER.TXT"], errors.Select(e => e.TargetObject));
        Assert.All(errors, e =>
        {
            Assert.Equal("RemoteFileNotFound", e.FullyQualifiedErrorId.Split(',')[0]);
            Assert.Equal(ErrorCategory.ObjectNotFound, e.CategoryInfo.Category);
            Assert.Contains($"127.0.0.1:{_server.Port}", e.Exception.Message);
        });
        Assert.Contains("-Recurse", errors[1].Exception.Message);
        List("-Name SUB/INNER.TXT -Recurse").AssertNoErrors();

        // Under -Path a name is still matched from the share's root; the error says how to write it.
        ErrorRecord underPath = List("-Path sub -Name inner.txt").SingleError("RemoteFileNotFound", ErrorCategory.ObjectNotFound);
        Assert.Contains("'sub/inner.txt'", underPath.Exception.Message);
        List("-Path sub -Name sub/inner.txt").AssertNoErrors();
    }

    [Fact]
    public void SeveralPorts_OneUnreachable_OneServerUnreachableErrorAndTheOthersFilesListed()
    {
        string otherShare = _temp.Folder("other");
        TestFiles.Write(otherShare, "other.txt", 5);
        FileShareServerJob other = _session.StartServer(otherShare);
        int dead = Ports.Free();

        Invocation result = _session.Run("param($Ports) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Ports",
            new { Ports = new[] { _server.Port, dead, other.Port } });

        ErrorRecord error = result.SingleError("ServerUnreachable", ErrorCategory.ConnectionError);
        Assert.Contains($"127.0.0.1:{dead}", error.Exception.Message);
        Assert.Equal($"127.0.0.1:{dead}", error.TargetObject);
        RemoteFileInfo[] files = result.Objects<RemoteFileInfo>().ToArray();
        Assert.Equal(["data.bin", "empty.txt", "readme.txt"], files.Where(f => f.Port == _server.Port).Select(f => f.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["other.txt"], files.Where(f => f.Port == other.Port).Select(f => f.Name));
    }

    [Fact]
    public void ComputerNameWithAPort_IsAskedOnThatPortOnly_AndAnIPv6AddressIsNamedInBrackets()
    {
        int dead = Ports.Free();

        Invocation result = _session.Run("param($Port, $Dead) Get-RemoteFileList -ComputerName \"127.0.0.1:$Port\", '::1' -Port $Dead -Name readme.txt",
            new { _server.Port, Dead = dead });

        // The server listens on 127.0.0.1 only: '::1' at -Port is refused, and its error names it as an endpoint.
        ErrorRecord error = result.SingleError("ServerUnreachable", ErrorCategory.ConnectionError);
        Assert.Equal($"[::1]:{dead}", error.TargetObject);
        RemoteFileInfo listed = Assert.Single(result.Objects<RemoteFileInfo>());
        Assert.Equal(("127.0.0.1", _server.Port), (listed.ComputerName, listed.Port));
    }

    [Fact]
    public void AMalformedNamePattern_IsOneTerminatingInvalidNamePattern()
    {
        Invocation result = List("-Name '[bad', readme.txt");

        ErrorRecord error = result.SingleError("InvalidNamePattern", ErrorCategory.InvalidArgument);
        Assert.Equal("[bad", error.TargetObject);
        Assert.Empty(result.Output);
    }

    [Fact]
    public void PortRangeString_ListsEveryServerInTheRange()
    {
        int first = Ports.FreeRun(2);
        _session.Run("param($Range, $Path) Start-FileShareServer -Port $Range -Path $Path -BindAddress 127.0.0.1", new { Range = $"{first}..{first + 1}", Path = _share })
            .AssertNoErrors();

        RemoteFileInfo[] files = _session.Run($"Get-RemoteFileList -ComputerName 127.0.0.1 -Port {first}..{first + 1} -Name readme.txt")
            .AssertNoErrors().Objects<RemoteFileInfo>().ToArray();

        Assert.Equal([first, first + 1], files.Select(f => f.Port).Order());
    }

    [Fact]
    public void Path_ListsASubfolder_WithNamesRelativeToTheShare()
    {
        string[] names = List("-Path sub -Recurse").AssertNoErrors().Objects<RemoteFileInfo>().Select(f => f.Name).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(["sub/deeper/deep.bin", "sub/inner.txt"], names);
    }

    [Fact]
    public void PathOutsideTheShare_IsRemotePathRefused()
    {
        Invocation result = List("-Path ..");

        ErrorRecord error = result.SingleError("RemotePathRefused", ErrorCategory.PermissionDenied);
        Assert.Contains($"127.0.0.1:{_server.Port}", error.Exception.Message);
        Assert.Empty(result.Output);
    }

    [Fact]
    public void DefaultComputerName_IsLocalhost()
    {
        RemoteFileInfo[] files = _session.Run("param($Port) Get-RemoteFileList -Port $Port", new { _server.Port }).AssertNoErrors().Objects<RemoteFileInfo>().ToArray();

        Assert.Equal(3, files.Length);
        Assert.All(files, f => Assert.Equal("localhost", f.ComputerName));
    }

    [Fact]
    public void ServerThatNeverAnswers_IsServerTimeout_AfterTimeoutSec() => WithSilentServer(port =>
    {
        Invocation result = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -TimeoutSec 1", new { Port = port });

        ErrorRecord error = result.SingleError("ServerTimeout", ErrorCategory.OperationTimeout);
        Assert.Contains($"127.0.0.1:{port}", error.Exception.Message);
        Assert.InRange(result.Duration, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
    });

    [Fact]
    public void AServerThatAnswers_IsWrittenBeforeASilentOneNamedBeforeIt() => WithSilentServer(port =>
    {
        // One merged stream shows what a pipeline further on receives first.
        Invocation result = _session.Run("""
            param($Silent, $Port)
            Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Silent, $Port -TimeoutSec 3 2>&1 |
                ForEach-Object { if ($_ -is [System.Management.Automation.ErrorRecord]) { "error $($_.FullyQualifiedErrorId)" } else { $_.Name } }
            """, new { Silent = port, _server.Port });

        string[] seen = result.AssertNoErrors().Objects<string>().ToArray();
        Assert.Equal(["data.bin", "empty.txt", "readme.txt"], seen[..3].Order(StringComparer.Ordinal));
        Assert.StartsWith("error ServerTimeout", seen[3]);
        Assert.Equal(4, seen.Length);
    });

    /// <summary>A port whose connections the kernel completes from the backlog, but where nothing ever reads or answers.</summary>
    private static void WithSilentServer(Action<int> test)
    {
        var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            test(((System.Net.IPEndPoint)silent.LocalEndpoint).Port);
        }
        finally
        {
            silent.Stop();
        }
    }

    [Fact]
    public void AComputerNameThatIsAUrl_IsRefusedAtBinding_WithTheHostAndPortToWriteInstead()
    {
        Invocation result = _session.Run("param($Port) Get-RemoteFileList -ComputerName \"http://127.0.0.1:$Port/\"", new { _server.Port });

        ErrorRecord error = result.SingleError("ParameterArgumentValidationError", ErrorCategory.InvalidData);
        Assert.Contains($"'127.0.0.1:{_server.Port}'", error.Exception.Message);
        Assert.Empty(result.Output);
    }

    [Fact]
    public void FromThePipeline_ARowWhoseComputerNameIsAPath_FailsAlone_AndTheOtherRowsAreListed()
    {
        Invocation result = _session.Run("""
            param($Port)
            [pscustomobject]@{ ComputerName = '\\127.0.0.1\share'; Port = $Port },
            [pscustomobject]@{ ComputerName = '127.0.0.1'; Port = $Port } | Get-RemoteFileList
            """, new { _server.Port });

        ErrorRecord error = result.SingleError("ParameterArgumentValidationError", ErrorCategory.InvalidData);
        Assert.Contains("is a network path", error.Exception.Message);
        Assert.Equal(["data.bin", "empty.txt", "readme.txt"], result.Objects<RemoteFileInfo>().Select(f => f.Name).Order(StringComparer.Ordinal));
    }

    private Invocation List(string arguments = "") =>
        _session.Run($"param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port {arguments}", new { _server.Port });
}

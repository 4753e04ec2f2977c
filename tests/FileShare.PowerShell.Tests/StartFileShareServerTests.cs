using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;
using FileShare.Server;

namespace FileShare.PowerShell.Tests;

public sealed class StartFileShareServerTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;

    public StartFileShareServerTests() => _session = new PowerShellSession(_temp.Path);

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void ReturnsOneRunningJobPerPort_ListedByGetJob()
    {
        Invocation started = _session.Run("param($Path) Start-FileShareServer -Port 0, 0 -Path $Path -BindAddress 127.0.0.1", new { Path = _temp.Folder("share") })
            .AssertNoErrors();

        FileShareServerJob[] jobs = started.Objects<FileShareServerJob>().ToArray();
        Assert.Equal(2, jobs.Length);
        Assert.NotEqual(jobs[0].Port, jobs[1].Port);
        Assert.All(jobs, job => Assert.Equal((false, null), (job.RequiresAccessKey, job.CertificateThumbprint)));
        Assert.All(jobs, job => Assert.True(Ports.Accepts(job.Port), $"Nothing accepts connections on port {job.Port}."));

        PSObject[] listed = _session.Run("Get-Job").Output.ToArray();
        Assert.Equal(jobs.Select(j => j.Id).Order(), listed.Select(j => ((Job)j.BaseObject).Id).Order());
        Assert.All(listed, job =>
        {
            Assert.Equal(FileShareServerJob.JobTypeName, job.Properties["PSJobTypeName"].Value);
            Assert.Equal(JobState.Running, ((Job)job.BaseObject).JobStateInfo.State);
        });
    }

    [Fact]
    public void DefaultRoot_IsDPortUnderTheSessionLocation_AndIsCreated()
    {
        int port = Ports.Free();
        string expected = _temp.Join($"d{port}");
        Assert.False(Directory.Exists(expected));

        FileShareServerJob job = Assert.Single(_session.Run("param($Port) Start-FileShareServer -Port $Port -BindAddress 127.0.0.1", new { Port = port })
            .AssertNoErrors().Objects<FileShareServerJob>());

        Assert.Equal(expected, job.Root);
        Assert.True(Directory.Exists(expected), $"'{expected}' was not created.");
    }

    [Theory]
    [InlineData("")]
    [InlineData("-Wait")]
    public void WhatIf_StartsNothing_AndMakesNoFolder(string wait)
    {
        int port = Ports.Free();

        Invocation result = _session.Run($"param($Port) Start-FileShareServer -Port $Port -BindAddress 127.0.0.1 -WhatIf {wait}", new { Port = port }).AssertNoErrors();

        Assert.Empty(result.Output);
        Assert.Empty(_session.Jobs());
        Assert.False(Directory.Exists(_temp.Join($"d{port}")), "-WhatIf made the share folder");
        Ports.AssertFree(port);
    }

    [Fact]
    public void OnePath_IsSharedByEveryPort()
    {
        string share = _temp.Folder("share");
        TestFiles.Write(share, "common.txt", 100);

        FileShareServerJob[] jobs = _session.Run("param($Path) Start-FileShareServer -Port 0, 0 -Path $Path -BindAddress 127.0.0.1", new { Path = share })
            .AssertNoErrors().Objects<FileShareServerJob>().ToArray();

        Assert.Equal(2, jobs.Length);
        Assert.All(jobs, job =>
        {
            Assert.Equal(share, job.Root);
            Assert.Equal(["common.txt"], ListNames(job.Port));
        });
    }

    [Fact]
    public void OnePathPerPort_EachServerSharesItsOwnFolder()
    {
        string first = _temp.Folder("first");
        string second = _temp.Folder("second");
        TestFiles.Write(first, "one.txt", 10);
        TestFiles.Write(second, "two.txt", 20);

        FileShareServerJob[] jobs = _session.Run("param($A, $B) Start-FileShareServer -Port 0, 0 -Path $A, $B -BindAddress 127.0.0.1", new { A = first, B = second })
            .AssertNoErrors().Objects<FileShareServerJob>().ToArray();

        Assert.Equal([first, second], jobs.Select(j => j.Root));
        Assert.Equal(["one.txt"], ListNames(jobs[0].Port));
        Assert.Equal(["two.txt"], ListNames(jobs[1].Port));
    }

    [Fact]
    public void RelativePath_ResolvesAgainstTheSessionLocation()
    {
        FileShareServerJob job = Assert.Single(_session.Run("Start-FileShareServer -Port 0 -Path ./relative/share -BindAddress 127.0.0.1")
            .AssertNoErrors().Objects<FileShareServerJob>());

        Assert.Equal(_temp.Join("relative/share"), job.Root);
        Assert.True(Directory.Exists(job.Root));
    }

    [Fact]
    public void PathThatIsAFile_IsServerStartFailed_NamingPortAndPath()
    {
        string file = TestFiles.Write(_temp.Path, "not-a-folder", 1);

        Invocation result = _session.Run("param($Path) Start-FileShareServer -Port 0 -Path $Path -BindAddress 127.0.0.1", new { Path = file });

        ErrorRecord error = result.SingleError("ServerStartFailed", ErrorCategory.OpenError);
        Assert.Contains($"'{file}' is a file, not a folder", error.Exception.Message);
        Assert.Empty(_session.Jobs());
    }

    [Fact]
    public void APortGivenTwice_IsPortGivenTwice_AndStartsNothing()
    {
        int port = Ports.Free();
        Invocation result = _session.Run("param($Port, $A) Start-FileShareServer -Port $Port, 0, $Port -Path $A -BindAddress 127.0.0.1",
            new { Port = port, A = _temp.Folder("a") });

        ErrorRecord error = result.SingleError("PortGivenTwice", ErrorCategory.InvalidArgument);
        Assert.Equal(port, error.TargetObject);
        Assert.Empty(result.Output);
        Assert.Empty(_session.Jobs());
        Ports.AssertFree(port);
    }

    [Theory]
    [InlineData("Push-Location env:; try { Start-FileShareServer -Port $Port -BindAddress 127.0.0.1 } finally { Pop-Location }", "InvalidSharePath", "default path 'd")]
    [InlineData("Start-FileShareServer -Port $Port -Path env:/shared -BindAddress 127.0.0.1", "InvalidSharePath", "-Path 'env:/shared' is on the Environment provider")]
    [InlineData("Push-Location env:; try { Start-FileShareServer -Port $Port -Path $Share -AccessKeyPath key.txt -BindAddress 127.0.0.1 } finally { Pop-Location }", "InvalidAccessKeyPath", "-AccessKeyPath 'key.txt' is on the Environment provider")]
    public void APathOnAnotherProvider_IsOneTerminatingError_AndNothingIsCreatedOrStarted(string script, string errorId, string said)
    {
        // Such a path used to become a bare name, which .NET resolves against the process's own working folder.
        int port = Ports.Free();

        Invocation result = _session.Run("param($Port, $Share) " + script, new { Port = port, Share = _temp.Folder("share") });

        ErrorRecord error = result.SingleError(errorId, ErrorCategory.InvalidArgument);
        Assert.Contains(said, error.Exception.Message);
        Assert.False(Directory.Exists(Path.Join(Environment.CurrentDirectory, $"d{port}")), "a folder was made in the process's own folder");
        Assert.False(Directory.Exists(Path.Join(Environment.CurrentDirectory, "shared")), "a folder was made in the process's own folder");
        Assert.Empty(_session.Jobs());
        Ports.AssertFree(port);
    }

    [Fact]
    public void PathCountOtherThanOneOrOnePerPort_IsPathCountMismatch_AndStartsNothing()
    {
        Invocation result = _session.Run("param($A, $B) Start-FileShareServer -Port 0, 0, 0 -Path $A, $B -BindAddress 127.0.0.1",
            new { A = _temp.Folder("a"), B = _temp.Folder("b") });

        ErrorRecord error = result.SingleError("PathCountMismatch", ErrorCategory.InvalidArgument);
        Assert.Contains("2 path(s) for 3 port(s)", error.Exception.Message);
        Assert.Empty(result.Output);
        Assert.Empty(_session.Jobs());
    }

    [Fact]
    public void PortInUse_IsANonTerminatingPortInUse_AndTheOtherPortsStillStart()
    {
        WhilePortIsTaken(busy =>
        {
            Invocation result = _session.Run(
                "param($Busy, $Path) Start-FileShareServer -Port 0, $Busy, 0 -Path $Path -BindAddress 127.0.0.1; 'after'",
                new { Busy = busy, Path = _temp.Folder("share") });

            ErrorRecord error = result.SingleError("PortInUse", ErrorCategory.ResourceBusy);
            Assert.Contains(busy.ToString(), error.Exception.Message);
            FileShareServerJob[] jobs = result.Objects<FileShareServerJob>().ToArray();
            Assert.Equal(2, jobs.Length);
            Assert.All(jobs, job => Assert.Equal(JobState.Running, job.JobStateInfo.State));
            Assert.Equal("after", result.Objects<string>().Single());
            Assert.Equal(2, _session.Jobs().Length);
        });
    }

    [Fact]
    public void PortInUse_UnderErrorActionStop_EndsTheCommand_AndLeavesNoServerOfItListening()
    {
        WhilePortIsTaken(busy =>
        {
            int first = Ports.Free();
            Invocation result = _session.Run(
                "param($First, $Busy, $Path) Start-FileShareServer -Port $First, $Busy -Path $Path -BindAddress 127.0.0.1 -ErrorAction Stop; 'after'",
                new { First = first, Busy = busy, Path = _temp.Folder("share") });

            ErrorRecord error = result.SingleError("PortInUse", ErrorCategory.ResourceBusy);
            Assert.Contains(busy.ToString(), error.Exception.Message);
            Assert.Empty(result.Output);
            Assert.Empty(_session.Jobs());
            Ports.AssertFree(first);
        });
    }

    [Theory]
    [InlineData("localhost", "127.0.0.1, ::1")]
    [InlineData("::1, 127.0.0.1, localhost", "::1, 127.0.0.1")]
    public void BindAddressLocalhost_ServesBothLoopbacksOnOnePort_AndStopJobFreesBoth(string bindAddress, string listened)
    {
        string share = _temp.Folder("share");
        string source = TestFiles.Write(share, "data.bin", 300_000);

        FileShareServerJob job = Assert.Single(_session.Run($"param($Path) Start-FileShareServer -BindAddress {bindAddress} -Port 0 -Path $Path", new { Path = share })
            .AssertNoErrors().Objects<FileShareServerJob>());

        // localhost is both loopbacks whatever the resolver says (here /etc/hosts names 127.0.0.1 only), each listened on once.
        Assert.Equal(listened, job.BindAddress);
        string table = string.Concat(_session.Run("param($Job) $Job | Out-String -Width 200", new { Job = job }).Output);
        Assert.Matches($@"Running\s+{System.Text.RegularExpressions.Regex.Escape(listened)}\s+{job.Port} ", table);
        Assert.Equal(string.Join(", ", listened.Split(", ").Select(address => new IPEndPoint(IPAddress.Parse(address), job.Port))), job.Location);
        foreach ((string host, string folder) in new[] { ("127.0.0.1", "v4"), ("::1", "v6") })
        {
            _session.Run("param($ComputerName, $Port, $Dest) Get-RemoteFile data.bin -ComputerName $ComputerName -Port $Port -Destination $Dest",
                new { ComputerName = host, Port = job.Port, Dest = _temp.Join(folder) }).AssertNoErrors();
            Assert.Equal(TestFiles.Sha256(source), TestFiles.Sha256(_temp.Join($"{folder}/data.bin")));
        }

        _session.Run("param($Job) Stop-Job -Job $Job", new { Job = job }).AssertNoErrors();

        Assert.Equal(JobState.Stopped, job.JobStateInfo.State);
        Ports.AssertFree(job.Port, IPAddress.Loopback);
        Ports.AssertFree(job.Port, IPAddress.IPv6Loopback);
    }

    [Fact]
    public void BindAddressThatDoesNotResolve_IsBindAddressNotFound_AndStartsNothing()
    {
        Invocation result = _session.Run("param($Path) Start-FileShareServer -BindAddress 127.0.0.1, no-such-host.invalid -Port 0 -Path $Path", new { Path = _temp.Folder("share") });

        ErrorRecord error = result.SingleError("BindAddressNotFound", ErrorCategory.ObjectNotFound);
        Assert.Contains("'no-such-host.invalid'", error.Exception.Message);
        Assert.Empty(_session.Jobs());
    }

    [Fact]
    public void BindAddressTakenOnOneAddress_IsPortInUseNamingIt_AndNoAddressStaysBound()
    {
        using var squatter = new TcpListener(IPAddress.IPv6Loopback, 0);
        squatter.Start();
        int busy = ((IPEndPoint)squatter.LocalEndpoint).Port;

        AssertStartFailsNamingItAndBindsNothing("localhost", busy, "PortInUse", ErrorCategory.ResourceBusy, $"[::1]:{busy}");
    }

    [Fact]
    public void BindAddressNotOnThisMachine_IsServerStartFailedNamingIt_AndNoAddressStaysBound()
    {
        // 203.0.113.7 is TEST-NET-3 (RFC 5737), documentation only: no machine has it, so binding it fails without sending anything.
        int port = Ports.Free();

        AssertStartFailsNamingItAndBindsNothing("127.0.0.1, 203.0.113.7", port, "ServerStartFailed", ErrorCategory.OpenError, $"203.0.113.7:{port}");
    }

    [Theory]
    [InlineData("{0}..{1}")]
    [InlineData("'{0}..{1}'")]
    public void PortRangeAsTyped_StartsOneServerPerPort(string format)
    {
        int first = Ports.FreeRun(3);
        string range = string.Format(format, first, first + 2);

        FileShareServerJob[] jobs = _session.Run($"param($Path) Start-FileShareServer -Port {range} -Path $Path -BindAddress 127.0.0.1", new { Path = _temp.Folder("share") })
            .AssertNoErrors().Objects<FileShareServerJob>().ToArray();

        Assert.Equal([first, first + 1, first + 2], jobs.Select(j => j.Port));
        Assert.All(jobs, job => Assert.True(Ports.Accepts(job.Port), $"Nothing accepts connections on port {job.Port}."));
    }

    [Fact]
    public void ReceiveJob_YieldsARequestLogRecordPerDownload_AndBytesSentAddsUp()
    {
        string share = _temp.Folder("share");
        TestFiles.Write(share, "small.txt", 1_000);
        TestFiles.Write(share, "sub/larger.bin", 300_000);
        FileShareServerJob job = _session.StartServer(share);

        _session.Run("param($Port, $Dest) Get-RemoteFile -Name small.txt, sub/larger.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { job.Port, Dest = _temp.Folder("dest") }).AssertNoErrors();

        RequestLogRecord[] reads = [];
        Eventually.True(() => (reads = ReceiveLog(job).Where(r => r.Request == RequestKind.Read).ToArray()).Length == 2, "both downloads are logged");
        Assert.Equal(
            [("small.txt", 1_000L, "Ok"), ("sub/larger.bin", 300_000L, "Ok")],
            reads.Select(r => (r.Path, r.Bytes, r.Outcome)).OrderBy(r => r.Path, StringComparer.Ordinal));
        Assert.All(reads, r => Assert.Equal(job.Port, r.Port));
        Assert.Equal(301_000, job.BytesSent);
        Assert.True(job.HasMoreData);
    }

    [Fact]
    public void ReceiveJob_KeepsOnlyTheLatestMaxLogRecords()
    {
        string share = _temp.Folder("share");
        string[] names = Enumerable.Range(1, 6).Select(i => $"file{i}.txt").ToArray();
        foreach (string name in names)
        {
            TestFiles.Write(share, name, 100);
        }

        FileShareServerJob job = _session.StartServer(share, "-MaxLogRecords 4");
        _session.Run("param($Port, $Names, $Dest) Get-RemoteFile -Name $Names -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -ThrottleLimit 1",
            new { job.Port, Names = names, Dest = _temp.Folder("dest") }).AssertNoErrors();

        // One at a time, each a digest then a read, so the log ends with the last two files' four requests, in order.
        Eventually.True(
            () => ReceiveLog(job).Select(r => (r.Request, r.Path)).SequenceEqual(
                [(RequestKind.Hash, names[4]), (RequestKind.Read, names[4]), (RequestKind.Hash, names[5]), (RequestKind.Read, names[5])]),
            "the log holds exactly the last four requests");
        Assert.Equal(12, job.Requests);
    }

    [Fact]
    public void ReceiveJob_ShowsEachRecordAsALine_KeepingTheWholePathAndOutcome_At80Columns()
    {
        string share = _temp.Folder("share");
        const string name = "quarterly reports/2026/north-east region summary.csv";
        TestFiles.Write(share, name, 100);
        FileShareServerJob job = _session.StartServer(share);
        _session.Run("param($Port, $Dest) Get-RemoteFile -Name 'quarterly reports/2026/north-east region summary.csv', missing.txt -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { job.Port, Dest = _temp.Folder("dest") });
        // Polled on the records the lines below show, not on a count of them: a CI run once waited 10 s for exactly
        // three and did not see them, and did not say what it saw.
        RequestLogRecord[] logged = [];
        Eventually.True(
            () => (logged = ReceiveLog(job)).Any(r => r is { Request: RequestKind.Read, Path: name })
                && logged.Any(r => r is { Request: RequestKind.Hash, Path: "missing.txt" }),
            "the read and the refused request are logged",
            seen: () => string.Join("; ", logged.Select(r => $"{r.Request} '{r.Path}' {r.Outcome}")));

        string shown = string.Concat(_session.Run("param($Job) Receive-Job -Job $Job -Keep | Out-String -Width 80", new { Job = job }).AssertNoErrors().Output);
        string unwrapped = shown.Replace("\n", "");

        Assert.Contains($" Read '{name}' 100 B in ", unwrapped);
        Assert.Contains(" Hash 'missing.txt' 0 B in ", unwrapped);
        Assert.Contains("NotFound", unwrapped);
    }

    [Fact]
    public async Task ReceiveJob_LogsRequestsServedBeforeTheJobExisted()
    {
        string share = _temp.Folder("share");
        TestFiles.Write(share, "file.txt", 100);
        int port = Ports.Free();
        using var stop = new CancellationTokenSource();

        // Original-protocol clients knocking from before the server starts: the first are served while
        // Start-FileShareServer is still making the job.
        Task<int> knocking = Task.Run(async () =>
        {
            int served = 0;
            while (!stop.IsCancellationRequested)
            {
                served += await SeedDownloadAsync(port) ? 1 : 0;
            }

            return served;
        });
        FileShareServerJob job = _session.Run("param($Port, $Path) Start-FileShareServer -Port $Port -Path $Path -BindAddress 127.0.0.1 -MaxLogRecords 100000", new { Port = port, Path = share })
            .AssertNoErrors().Objects<FileShareServerJob>().Single();
        Eventually.True(() => job.Requests >= 20, "the server serves the knocking clients");
        stop.Cancel();
        int served = await knocking;

        Eventually.True(() => job.Requests == served, "every served request is counted");
        Assert.Equal(served, ReceiveLog(job).Length);
    }

    [Fact]
    public void Wait_ServesInTheForegroundWritingRequestRecords_UntilStopped_ThenFreesThePort()
    {
        string share = _temp.Folder("share");
        TestFiles.Write(share, "file.txt", 2_000);
        int port = Ports.Free();
        using RunningInvocation serving = _session.Begin("param($Port, $Path) Start-FileShareServer -Port $Port -Path $Path -BindAddress 127.0.0.1 -Wait", new { Port = port, Path = share });
        Eventually.True(() => Ports.Accepts(port) || serving.IsCompleted, "the server accepts connections");
        Assert.False(serving.IsCompleted, "Start-FileShareServer -Wait returned while it should still be serving: " +
            string.Join("; ", RunningInvocation.Snapshot(serving.Shell.Streams.Error).Select(e => e.Exception.Message)));

        using (var client = new PowerShellSession(_temp.Path))
        {
            client.Run("param($Port, $Dest) Get-RemoteFile -Name file.txt -ComputerName 127.0.0.1 -Port $Port -Destination $Dest", new { Port = port, Dest = _temp.Folder("dest") })
                .AssertNoErrors();
        }

        // The read is logged once its last byte is sent, which can be just after the client has it.
        Eventually.True(() => serving.OutputSoFar.Any(o => o.BaseObject is RequestLogRecord { Request: RequestKind.Read }), "the read is written to the pipeline");
        Eventually.Within(serving.Shell.Stop, TimeSpan.FromSeconds(10), "Stopping Start-FileShareServer -Wait");
        Ports.AssertFree(port);
        Invocation result = serving.Wait(TimeSpan.FromSeconds(5));
        Assert.Empty(result.Errors);
        Assert.Contains(result.Objects<RequestLogRecord>(), r => r is { Request: RequestKind.Read, Path: "file.txt", Bytes: 2_000, Outcome: "Ok" });
    }

    /// <summary>Asks for file.txt the original program's way; false when nothing listens yet.</summary>
    private static async Task<bool> SeedDownloadAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
        }
        catch (SocketException)
        {
            return false;
        }

        NetworkStream stream = client.GetStream();
        await stream.WriteAsync("file.txt"u8.ToArray());
        var reply = new MemoryStream();
        await stream.CopyToAsync(reply);
        Assert.Equal(102, reply.Length);
        return true;
    }

    private RequestLogRecord[] ReceiveLog(FileShareServerJob job) =>
        _session.Run("param($Job) Receive-Job -Job $Job -Keep", new { Job = job }).AssertNoErrors().Objects<RequestLogRecord>().ToArray();

    private string[] ListNames(int port) =>
        _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { Port = port })
            .AssertNoErrors().Objects<RemoteFileInfo>().Select(f => f.Name).ToArray();

    /// <summary>Starts a server with one address it cannot bind: the error names that address:port, and 127.0.0.1 is left free.</summary>
    private void AssertStartFailsNamingItAndBindsNothing(string bindAddress, int port, string errorId, ErrorCategory category, string failedEndpoint)
    {
        Invocation result = _session.Run($"param($Port, $Path) Start-FileShareServer -BindAddress {bindAddress} -Port $Port -Path $Path",
            new { Port = port, Path = _temp.Folder("share") });

        ErrorRecord error = result.SingleError(errorId, category);
        Assert.Contains(failedEndpoint, error.Exception.Message);
        Assert.Empty(_session.Jobs());
        Ports.AssertFree(port, IPAddress.Loopback);
    }

    /// <summary>Runs <paramref name="test"/> with a loopback port that another listener holds.</summary>
    private static void WhilePortIsTaken(Action<int> test)
    {
        var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        try
        {
            test(((IPEndPoint)squatter.LocalEndpoint).Port);
        }
        finally
        {
            squatter.Stop();
        }
    }
}

using System.Management.Automation;
using System.Net;
using System.Net.Sockets;
using FileShare.PowerShell.Jobs;
using FileShare.PowerShell.Tests.Support;
using FileShare.Protocol;
using FileShare.Server;

namespace FileShare.PowerShell.Tests;

/// <summary>The limit parameters of Start-FileShareServer reach the server, and what they refuse reaches the user.</summary>
public sealed class LimitParameterTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _share;

    public LimitParameterTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _share = _temp.Folder("share");
        TestFiles.Write(_share, "a-name-longer-than-sixteen-bytes.txt", 10);
        TestFiles.Write(_share, "short.txt", 10);
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void MaxNameBytes_refuses_a_longer_name_with_ServerLimitExceeded_and_still_serves_short_ones()
    {
        FileShareServerJob server = _session.StartServer(_share, "-MaxNameBytes 16");
        string destination = _temp.Join("dest");

        Invocation result = _session.Run("param($Port, $Dest) Get-RemoteFile -Name a-name-longer-than-sixteen-bytes.txt, short.txt -ComputerName 127.0.0.1 -Port $Port -Destination $Dest",
            new { server.Port, Dest = destination });

        ErrorRecord error = result.SingleError("ServerLimitExceeded", ErrorCategory.LimitsExceeded);
        Assert.Contains($"127.0.0.1:{server.Port}", error.Exception.Message);
        Assert.Equal(["short.txt"], TestFiles.List(destination));
    }

    [Fact]
    public void MinDataRate_drops_a_client_trickling_a_request_and_the_job_logs_it()
    {
        FileShareServerJob server = _session.StartServer(_share, "-MinDataRate 1000 -MinDataRateGraceSec 1");
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(IPAddress.Loopback, server.Port);
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, 0);
        socket.Send(hello);
        Assert.Equal(hello.Length, socket.Receive(hello, SocketFlags.None));

        socket.Send([0]);

        Eventually.True(() => Records(server).Any(r => r.Request == RequestKind.Connection && r.Outcome.StartsWith("TooSlow", StringComparison.Ordinal)),
            "the server logs the slow client", TimeSpan.FromSeconds(20));
    }

    private RequestLogRecord[] Records(FileShareServerJob job) =>
        _session.Run("param($Job) Receive-Job -Job $Job -Keep", new { Job = job }).AssertNoErrors().Objects<RequestLogRecord>().ToArray();
}

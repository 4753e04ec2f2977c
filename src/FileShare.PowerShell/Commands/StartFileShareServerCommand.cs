using System.Collections.Concurrent;
using System.Management.Automation;
using System.Net;
using FileShare.PowerShell.Jobs;
using FileShare.Server;

namespace FileShare.PowerShell.Commands;

/// <summary>Shares folders over TCP, one server per port, as background jobs or in the foreground with -Wait.</summary>
[Cmdlet(VerbsLifecycle.Start, "FileShareServer")]
[OutputType(typeof(FileShareServerJob))]
[OutputType(typeof(RequestLogRecord))]
public sealed class StartFileShareServerCommand : FileShareCmdlet
{
    [Parameter(Position = 0)]
    [PortRange]
    [ValidateRange(0, 65535)]
    public int[] Port { get; set; } = [5000];

    /// <summary>One folder for every port, or one per port; default ./d&lt;PORT&gt;.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[]? Path { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? BindAddress { get; set; }

    [Parameter]
    [ValidateRange(1, 100_000)]
    public int MaxConnections { get; set; } = 256;

    [Parameter]
    [ValidateRange(1, 100_000)]
    public int MaxConnectionsPerAddress { get; set; } = 64;

    /// <summary>Seconds a connection may sit idle between requests before the server closes it.</summary>
    [Parameter]
    [ValidateRange(1, 86_400)]
    public int IdleTimeoutSec { get; set; } = 120;

    /// <summary>Seconds a send may make no progress (a client that stopped reading) before the connection is cut.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int SendTimeoutSec { get; set; } = 30;

    /// <summary>Bytes per second a client must at least move, sending a request or taking a range; 0 turns the floor off.</summary>
    [Parameter]
    [ValidateRange(0, long.MaxValue)]
    public long MinDataRate { get; set; } = 4096;

    /// <summary>Seconds a client may fall behind -MinDataRate before it is dropped.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int MinDataRateGraceSec { get; set; } = 10;

    /// <summary>Longest file or folder name, in UTF-8 bytes, a request may carry.</summary>
    [Parameter]
    [ValidateRange(1, FileShare.Protocol.ProtocolConstants.MaxPathBytes)]
    public int MaxNameBytes { get; set; } = 4096;

    /// <summary>How many request records each job keeps for Receive-Job; older ones are dropped first.</summary>
    [Parameter]
    [ValidateRange(1, 1_000_000)]
    public int MaxLogRecords { get; set; } = 1000;

    [Parameter]
    public SwitchParameter Wait { get; set; }

    protected override void EndProcessing()
    {
        if (Path is not null && Path.Length != 1 && Path.Length != Port.Length)
        {
            ThrowTerminatingError(ErrorRecords.Create("PathCountMismatch", ErrorCategory.InvalidArgument,
                $"Give one -Path for all ports or one per port: {Path.Length} path(s) for {Port.Length} port(s).", Path));
        }

        if (Path is null && Port.Contains(0))
        {
            ThrowTerminatingError(ErrorRecords.Create("PathRequiredForPortZero", ErrorCategory.InvalidArgument,
                "-Port 0 lets the system choose the port, so the default folder ./d<PORT> is unknown in advance; give -Path.", 0));
        }

        IPAddress? bindAddress = ResolveBindAddress();
        var started = new List<FileShareServer>();
        for (int i = 0; i < Port.Length; i++)
        {
            string root = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path is null ? $"d{Port[i]}" : Path[Path.Length == 1 ? 0 : i]);
            var server = new FileShareServer(new FileShareServerOptions
            {
                Port = Port[i],
                Root = root,
                BindAddress = bindAddress,
                MaxConnections = MaxConnections,
                MaxConnectionsPerAddress = MaxConnectionsPerAddress,
                IdleTimeout = TimeSpan.FromSeconds(IdleTimeoutSec),
                SendTimeout = TimeSpan.FromSeconds(SendTimeoutSec),
                MinDataRate = MinDataRate,
                MinDataRateGracePeriod = TimeSpan.FromSeconds(MinDataRateGraceSec),
                MaxNameBytes = MaxNameBytes,
            });
            try
            {
                server.Start();
            }
            catch (FileShareException e)
            {
                WriteFileShareError(e, Port[i]);
                continue;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException)
            {
                WriteError(ErrorRecords.Create("ServerStartFailed", ErrorCategory.OpenError, $"Could not start a server on port {Port[i]} for '{root}': {e.Message}", Port[i], e));
                continue;
            }

            WriteVerbose($"Sharing '{server.Root}' on {server.LocalEndPoint}.");
            started.Add(server);
        }

        if (Wait)
        {
            if (started.Count == 0)
            {
                // Nothing to serve: fail the command, so a job or script running it ends Failed, not Completed.
                ThrowTerminatingError(ErrorRecords.Create("NoServerStarted", ErrorCategory.ResourceUnavailable,
                    $"No server could be started on port(s) {string.Join(", ", Port)}; see the errors above.", Port));
            }

            ServeInForeground(started);
            return;
        }

        foreach (FileShareServer server in started)
        {
            var job = new FileShareServerJob(server, MyInvocation.Line, MaxLogRecords);
            JobRepository.Add(job);
            SessionServers.Track(job);
            WriteObject(job);
        }
    }

    /// <summary>Writes each request record as it happens until Ctrl+C, then stops every server before returning.</summary>
    private void ServeInForeground(List<FileShareServer> servers)
    {
        using var records = new BlockingCollection<RequestLogRecord>(boundedCapacity: MaxLogRecords);
        foreach (FileShareServer server in servers)
        {
            // Never block a connection on a slow console: drop the record rather than wait.
            server.RequestCompleted = record => records.TryAdd(record);
            Host.UI.WriteLine($"FileShare: sharing '{server.Root}' on port {server.Port}. Press Ctrl+C to stop.");
        }

        try
        {
            foreach (RequestLogRecord record in records.GetConsumingEnumerable(Cancellation))
            {
                WriteObject(record);
            }
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C: fall through to a clean stop.
        }
        finally
        {
            Task.WhenAll(servers.Select(s => s.StopAsync(TimeSpan.FromSeconds(5)))).GetAwaiter().GetResult();
        }
    }

    private IPAddress? ResolveBindAddress()
    {
        if (BindAddress is null or "*")
        {
            return null;
        }

        if (IPAddress.TryParse(BindAddress, out IPAddress? address))
        {
            return address;
        }

        try
        {
            return Dns.GetHostAddresses(BindAddress).First();
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or InvalidOperationException)
        {
            ThrowTerminatingError(ErrorRecords.Create("BindAddressNotFound", ErrorCategory.ObjectNotFound, $"Cannot resolve bind address '{BindAddress}': {e.Message}", BindAddress, e));
            return null;
        }
    }
}

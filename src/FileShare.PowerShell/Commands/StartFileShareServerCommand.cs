using System.Collections.Concurrent;
using System.Management.Automation;
using System.Net;
using System.Runtime.InteropServices;
using System.Security;
using System.Security.Cryptography.X509Certificates;
using FileShare.Protocol;
using FileShare.PowerShell.Jobs;
using FileShare.Server;

namespace FileShare.PowerShell.Commands;

/// <summary>Shares folders over TCP, one server per port, as background jobs or in the foreground with -Wait.</summary>
[Cmdlet(VerbsLifecycle.Start, "FileShareServer", SupportsShouldProcess = true)]
[OutputType(typeof(FileShareServerJob))]
[OutputType(typeof(RequestLogRecord))]
[OutputType(typeof(string))]
public sealed class StartFileShareServerCommand : AccessKeyCmdlet
{
    /// <summary>How long transfers in flight may go on when a -Wait server is stopped (Ctrl+C, SIGTERM).</summary>
    private static readonly TimeSpan ForegroundDrain = TimeSpan.FromSeconds(5);

    [Parameter(Position = 0)]
    [PortRange]
    [ValidateRange(0, 65535)]
    public int[] Port { get; set; } = [5000];

    /// <summary>One folder for every port, or one per port; default ./d&lt;PORT&gt;.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[]? Path { get; set; }

    /// <summary>IP addresses or host names (every address each stands for), or * for every interface; all share each port.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? BindAddress { get; set; }

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
    /// <remarks>At most 100,000: a full log moves every record to drop its oldest, 0.7 µs per request at 1,000 records
    /// but 35 µs at 100,000 and 0.5 ms at a million. A longer log belongs in a file (-Wait, redirected).</remarks>
    [Parameter]
    [ValidateRange(1, 100_000)]
    public int MaxLogRecords { get; set; } = 1000;

    [Parameter]
    public SwitchParameter Wait { get; set; }

    /// <summary>TLS on the same port with this certificate: an X509Certificate2 with its private key, or a path to a PFX/PEM file.</summary>
    [Parameter]
    [ValidateNotNull]
    public object? Certificate { get; set; }

    /// <summary>The password of the -Certificate file (PFX, or an encrypted PEM key).</summary>
    [Parameter]
    public SecureString? CertificatePassword { get; set; }

    /// <summary>TLS with a self-signed certificate, made on first use and kept in the user's data folder for the next start.</summary>
    [Parameter]
    public SwitchParameter SelfSigned { get; set; }

    protected override void EndProcessing()
    {
        if (Path is not null && Path.Length != 1 && Path.Length != Port.Length)
        {
            ThrowTerminatingError(ErrorRecords.Create("PathCountMismatch", ErrorCategory.InvalidArgument,
                $"Give one -Path for all ports or one per port: {Path.Length} path(s) for {Port.Length} port(s).", Path));
        }

        if (Port.Where(port => port != 0).GroupBy(port => port).FirstOrDefault(same => same.Count() > 1) is { } repeated)
        {
            // Else the second would fail PortInUse against the first, an error about a conflict the user did not have.
            ThrowTerminatingError(ErrorRecords.Create("PortGivenTwice", ErrorCategory.InvalidArgument,
                $"Port {repeated.Key} is given more than once; one server serves a port (on several addresses with -BindAddress).", repeated.Key));
        }

        if (Path is null && Port.Contains(0))
        {
            ThrowTerminatingError(ErrorRecords.Create("PathRequiredForPortZero", ErrorCategory.InvalidArgument,
                "-Port 0 lets the system choose the port, so the default folder ./d<PORT> is unknown in advance; give -Path.", 0));
        }

        string[] roots = Port.Select((port, i) => FileSystemPath(Path is null ? $"d{port}" : Path[Path.Length == 1 ? 0 : i], nameof(Path), "InvalidSharePath")).ToArray();
        IReadOnlyList<IPAddress> bindAddresses = ResolveBindAddresses();
        AccessKey? accessKey = ResolveAccessKey();
        // Asked before anything is made: -WhatIf creates no share folder and no self-signed certificate.
        int[] approved = Enumerable.Range(0, Port.Length)
            .Where(i => ShouldProcess($"'{roots[i]}' on {(Port[i] == 0 ? "a port the system chooses" : $"port {Port[i]}")}", "Share"))
            .ToArray();
        if (approved.Length == 0)
        {
            return;
        }

        X509Certificate2? certificate = ServerCertificateArgument.Resolve(this, Certificate, CertificatePassword, SelfSigned);
        var started = new List<FileShareServer>();
        var logs = new Dictionary<FileShareServer, RequestLog>();
        // With -Wait, records wait here for the pipeline thread; never block a connection on a slow console: drop the
        // record rather than wait.
        using BlockingCollection<RequestLogRecord>? foregroundRecords = Wait ? new(boundedCapacity: MaxLogRecords) : null;
        Action<RequestLogRecord> LogOf(FileShareServer server) =>
            foregroundRecords is { } records ? record => records.TryAdd(record) : (logs[server] = new RequestLog(MaxLogRecords)).Append;
        try
        {
            StartEach(started, approved, roots, bindAddresses, accessKey, certificate, LogOf);

            // Said only of servers that run: a port already taken shares nothing.
            if (started.Count > 0)
            {
                AnnounceSecurity(bindAddresses, accessKey, certificate);
            }

            if (Wait && started.Count == 0)
            {
                // Nothing to serve: fail the command, so a job or script running it ends Failed, not Completed.
                ThrowTerminatingError(ErrorRecords.Create("NoServerStarted", ErrorCategory.ResourceUnavailable,
                    $"No server could be started on port(s) {string.Join(", ", Port)}; see the errors above.", Port));
            }

            if (!Wait && started.Count > 0)
            {
                FileShareServerJob.DescribeSerialization(this);
            }
        }
        catch
        {
            // The command ends in an error (-ErrorAction Stop on a busy port, Ctrl+C): the servers it started have no
            // job yet, so nothing could ever stop them. It starts nothing instead.
            Task.WhenAll(started.Select(server => server.StopAsync(TimeSpan.Zero))).GetAwaiter().GetResult();
            throw;
        }

        if (Wait)
        {
            ServeInForeground(started, foregroundRecords!);
            return;
        }

        var jobs = started.Select(server => new FileShareServerJob(server, logs[server], MyInvocation.Line)).ToList();
        foreach (FileShareServerJob job in jobs)
        {
            JobRepository.Add(job);
            SessionServers.Track(job);
        }

        WriteObject(jobs, enumerateCollection: true);
    }

    private void StartEach(List<FileShareServer> started, int[] approved, string[] roots, IReadOnlyList<IPAddress> bindAddresses, AccessKey? accessKey, X509Certificate2? certificate,
        Func<FileShareServer, Action<RequestLogRecord>> logOf)
    {
        foreach (int i in approved)
        {
            string root = roots[i];
            var server = new FileShareServer(new FileShareServerOptions
            {
                Port = Port[i],
                Root = root,
                BindAddresses = bindAddresses,
                MaxConnections = MaxConnections,
                MaxConnectionsPerAddress = MaxConnectionsPerAddress,
                IdleTimeout = TimeSpan.FromSeconds(IdleTimeoutSec),
                SendTimeout = TimeSpan.FromSeconds(SendTimeoutSec),
                AccessKey = accessKey,
                Certificate = certificate,
                MinDataRate = MinDataRate,
                MinDataRateGracePeriod = TimeSpan.FromSeconds(MinDataRateGraceSec),
                MaxNameBytes = MaxNameBytes,
            });
            server.RequestCompleted = logOf(server);
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

            started.Add(server);
            WriteVerbose($"Sharing '{server.Root}' on {string.Join(", ", server.LocalEndPoints)}.");
        }
    }

    /// <summary>
    /// Writes each request record as it happens until Ctrl+C or SIGTERM, then stops every server (transfers in flight
    /// get <see cref="ForegroundDrain"/> to finish) before returning.
    /// </summary>
    private void ServeInForeground(List<FileShareServer> servers, BlockingCollection<RequestLogRecord> records)
    {
        foreach (FileShareServer server in servers)
        {
            string where = server.ListensOnEveryInterface ? $"port {server.Port}" : string.Join(", ", server.LocalEndPoints);
            Host.UI.WriteLine($"FileShare: sharing '{server.Root}' on {where}. Press Ctrl+C to stop.");
        }

        // A service's log (systemd, docker, pwsh ... > server.log): the console formats objects at 80 columns when its
        // output is redirected, cutting a record into pieces. Where nothing follows in the pipeline, each record goes
        // out as its one line of text instead; a command after it (Export-Csv, Where-Object) still gets the objects.
        bool asLines = Host.Name == "ConsoleHost" && Console.IsOutputRedirected && MyInvocation.PipelinePosition == MyInvocation.PipelineLength;
        void Write(RequestLogRecord record) => WriteObject(asLines ? RequestLogView.Line(record) : record);
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        // Only where the command is the process's own foreground (pwsh -c, -File, a service): a -Wait in a thread job or
        // another runspace taking SIGTERM would leave the rest of the process running when it was asked to end.
        using PosixSignalRegistration? terminate = Host.Name == "ConsoleHost" ? StopOnTerminate(ending) : null;
        try
        {
            foreach (RequestLogRecord record in records.GetConsumingEnumerable(ending.Token))
            {
                Write(record);
            }
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C or SIGTERM: fall through to a clean stop.
        }
        finally
        {
            Task.WhenAll(servers.Select(s => s.StopAsync(ForegroundDrain))).GetAwaiter().GetResult();
        }

        // After SIGTERM the pipeline still runs: the records of the transfers that drained (or were cut) go out too.
        // After Ctrl+C it is stopping, and would take nothing.
        while (!Cancellation.IsCancellationRequested && records.TryTake(out RequestLogRecord? last))
        {
            Write(last);
        }
    }

    /// <summary>
    /// What systemd, <c>docker stop</c> and <c>timeout</c> send to end a service: without this the runtime ends the
    /// process at once, cutting every transfer and losing the last records. Null where the platform has no SIGTERM.
    /// </summary>
    private static PosixSignalRegistration? StopOnTerminate(CancellationTokenSource ending)
    {
        try
        {
            return PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal =>
            {
                signal.Cancel = true;
                try
                {
                    ending.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The signal came as the command was ending anyway; a throw here would end the process.
                }
            });
        }
        catch (PlatformNotSupportedException)
        {
            return null;
        }
    }

    /// <summary>Tells the user what protects the share: a warning when nothing does on a reachable address, the thumbprint clients pin.</summary>
    private void AnnounceSecurity(IReadOnlyList<IPAddress> bindAddresses, AccessKey? accessKey, X509Certificate2? certificate)
    {
        if (accessKey is null && (bindAddresses.Count == 0 || !bindAddresses.All(IPAddress.IsLoopback)))
        {
            string where = bindAddresses.Count == 0 ? "every network interface" : string.Join(", ", bindAddresses);
            WriteWarning($"Sharing on {where} without an access key: anyone who can reach the port can list and download every shared file. " +
                $"Add -AccessKey (Read-Host -AsSecureString), -AccessKeyPath <file>, or set $env:{AccessKeyVariable}; add -SelfSigned or -Certificate to encrypt. See docs/security.md.");
        }

        if (accessKey is not null || certificate is not null)
        {
            WriteVerbose("Clients of the original (keyless, plaintext) protocol are refused on these ports.");
        }

        if (certificate is not null)
        {
            WriteInformation(new HostInformationMessage { Message = $"TLS certificate {certificate.Subject}, SHA-256 thumbprint {ServerCertificate.Sha256Thumbprint(certificate)} (clients: -CertificateThumbprint)." },
                ["PSHOST", "FileShare"]);
        }
    }

    /// <summary>Every address the -BindAddress entries stand for, in order and once each; empty for every interface.</summary>
    private IReadOnlyList<IPAddress> ResolveBindAddresses() =>
        BindAddress is null || BindAddress.Contains("*") ? [] : [.. BindAddress.SelectMany(AddressesOf).Distinct()];

    private IPAddress[] AddressesOf(string name)
    {
        try
        {
            return BindAddresses.Of(name);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or ArgumentException)
        {
            ThrowTerminatingError(ErrorRecords.Create("BindAddressNotFound", ErrorCategory.ObjectNotFound, $"Cannot resolve bind address '{name}': {e.Message}", name, e));
            return [];
        }
    }
}

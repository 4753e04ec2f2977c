using System.Management.Automation;
using System.Management.Automation.Runspaces;
using FileShare.Server;

namespace FileShare.PowerShell.Jobs;

/// <summary>
/// A running server as a PowerShell job: Get-Job lists it, Receive-Job yields its request log, Stop-Job and
/// Stop-FileShareServer stop it. The server's own tasks feed the job's Output collection; no cmdlet is involved.
/// </summary>
public sealed class FileShareServerJob : Job2
{
    public const string JobTypeName = "FileShareServerJob";

    private static readonly string[] SerializedProperties =
        [nameof(Port), nameof(BindAddress), nameof(Root), nameof(ActiveConnections), nameof(TotalConnections), nameof(Requests), nameof(BytesSent), nameof(DrainTimeout),
         nameof(RequiresAccessKey), nameof(CertificateThumbprint)];

    private readonly FileShareServer _server;
    private int _stopStarted;

    /// <summary>Done once the first stop has set the job's final state, which every later stop waits for too.</summary>
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal FileShareServerJob(FileShareServer server, RequestLog log, string command)
        : base(command, $"FileShare:{server.Port}")
    {
        _server = server;
        Output = log.Records;
        PSJobTypeName = JobTypeName;
        PSBeginTime = DateTime.Now;
        DrainTimeout = TimeSpan.FromSeconds(10);
        SetJobState(JobState.Running);
    }

    /// <summary>
    /// Makes the session's serializer (remoting, Export-Clixml) carry the server's own properties: PowerShell's type
    /// data for every Job names only State, Location and the like. Registered by the session's Start-FileShareServer
    /// rather than by a types.ps1xml in the manifest, with which every Import-Module jitted about 1,500 more methods,
    /// a cost that the cold start of a client that never serves would pay.
    /// </summary>
    internal static void DescribeSerialization(PSCmdlet cmdlet)
    {
        var typeData = new TypeData(typeof(FileShareServerJob))
        {
            SerializationMethod = "SpecificProperties",
            InheritPropertySerializationSet = true,
            PropertySerializationSet = new PropertySetData(SerializedProperties),
        };
        void Unregistered(object why) => cmdlet.WriteVerbose($"The server jobs will cross remoting with the common job properties only: {why}");
        using var update = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
        try
        {
            update.AddCommand("Microsoft.PowerShell.Utility\\Update-TypeData").AddParameter("TypeData", typeData).AddParameter("Force").Invoke();
            foreach (ErrorRecord error in update.Streams.Error)
            {
                Unregistered(error);
            }
        }
        catch (RuntimeException e)
        {
            // A restricted session may lack Update-TypeData; the servers are already serving and must be handed back.
            Unregistered(e.Message);
        }
    }

    public int Port => _server.Port;

    public string Root => _server.Root;

    /// <summary>The addresses the server listens on, such as <c>127.0.0.1, ::1</c>, or <c>*</c> for every interface.</summary>
    public string BindAddress => _server.ListensOnEveryInterface ? "*" : string.Join(", ", _server.LocalEndPoints.Select(endpoint => endpoint.Address));

    /// <summary>Whether clients must prove the access key (-AccessKey, -AccessKeyPath or $env:FILESHARE_ACCESS_KEY).</summary>
    public bool RequiresAccessKey => _server.Options.AccessKey is not null;

    /// <summary>The SHA-256 thumbprint of the TLS certificate, which clients pin with -CertificateThumbprint; null without TLS.</summary>
    public string? CertificateThumbprint => _server.Options.Certificate is { } certificate ? ServerCertificate.Sha256Thumbprint(certificate) : null;

    public long ActiveConnections => _server.Statistics.ActiveConnections;

    public long TotalConnections => _server.Statistics.TotalConnections;

    public long Requests => _server.Statistics.Requests;

    public long BytesSent => _server.Statistics.BytesSent;

    /// <summary>How long Stop-Job lets transfers in flight finish before cutting them.</summary>
    public TimeSpan DrainTimeout { get; set; }

    public override bool HasMoreData => Output.Count > 0 || Error.Count > 0;

    /// <summary>Where clients connect: <c>*:5000</c>, or each address:port, such as <c>127.0.0.1:5000, [::1]:5000</c>.</summary>
    public override string Location => _server.ListensOnEveryInterface ? $"*:{Port}" : string.Join(", ", _server.LocalEndPoints);

    public override string StatusMessage => $"{ActiveConnections} connection(s), {Requests} request(s), {BytesSent} byte(s) sent";

    public override void StartJob()
    {
        // The server is bound and serving before the job exists, so a port in use is reported by the cmdlet.
    }

    public override void StartJobAsync() => OnStartJobCompleted(new System.ComponentModel.AsyncCompletedEventArgs(null, false, null));

    public override void StopJob() => StopJob(force: false, reason: string.Empty);

    public override void StopJob(bool force, string reason)
    {
        try
        {
            StopAsync(force ? TimeSpan.Zero : DrainTimeout).GetAwaiter().GetResult();
        }
        finally
        {
            OnStopJobCompleted(new System.ComponentModel.AsyncCompletedEventArgs(null, false, null));
        }
    }

    public override void StopJobAsync() => StopJobAsync(force: false, reason: string.Empty);

    public override void StopJobAsync(bool force, string reason) =>
        _ = StopAsync(force ? TimeSpan.Zero : DrainTimeout).ContinueWith(
            _ => OnStopJobCompleted(new System.ComponentModel.AsyncCompletedEventArgs(null, false, null)),
            TaskScheduler.Default);

    /// <summary>Stops accepting (the port is free when this returns), drains for up to <paramref name="drainTimeout"/>, then cuts the rest.</summary>
    public async Task StopAsync(TimeSpan drainTimeout)
    {
        // StopAsync unbinds before it first yields, so by the time the job says Stopping the port is free. A later stop
        // with a shorter drain (Stop-Job -Force, Remove-Job -Force during a patient Stop-Job) cuts the transfers sooner.
        Task stopping = _server.StopAsync(drainTimeout);
        if (Interlocked.Exchange(ref _stopStarted, 1) == 1)
        {
            // Else Stop-Job could report completion while the first stop has yet to say Stopped, and Remove-Job fail.
            await stopping.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await _ended.Task.ConfigureAwait(false);
            return;
        }

        SetJobState(JobState.Stopping);
        try
        {
            await stopping.ConfigureAwait(false);
            SetJobState(JobState.Stopped);
        }
        catch (Exception e)
        {
            // Not thrown on: Stop-Job, Remove-Job and the session's end must still see the job end. It ends Failed, with why.
            Error.Add(new ErrorRecord(e, "ServerStopFailed", ErrorCategory.CloseError, Port));
            SetJobState(JobState.Failed);
        }
        finally
        {
            Output.Complete();
            Error.Complete();
            _ended.SetResult();
        }
    }

    public override void SuspendJob() => throw new NotSupportedException("A FileShare server cannot be suspended; stop it instead.");

    public override void SuspendJob(bool force, string reason) => SuspendJob();

    public override void SuspendJobAsync() => SuspendJob();

    public override void SuspendJobAsync(bool force, string reason) => SuspendJob();

    public override void ResumeJob() => throw new NotSupportedException("A FileShare server cannot be suspended or resumed.");

    public override void ResumeJobAsync() => ResumeJob();

    public override void UnblockJob() => throw new NotSupportedException("A FileShare server never blocks.");

    public override void UnblockJobAsync() => UnblockJob();

    protected override void Dispose(bool disposing)
    {
        if (disposing && JobStateInfo.State is JobState.Running or JobState.Stopping)
        {
            StopJob(force: true, reason: "disposed");
        }

        base.Dispose(disposing);
    }
}

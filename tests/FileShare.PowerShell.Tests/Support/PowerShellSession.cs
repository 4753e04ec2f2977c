using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using FileShare.PowerShell.Commands;
using FileShare.PowerShell.Jobs;
using PowerShellPipeline = System.Management.Automation.PowerShell;

namespace FileShare.PowerShell.Tests.Support;

/// <summary>
/// An in-process PowerShell session with the FileShare cmdlets (and their views) loaded, the way a user's pwsh
/// would have them after Import-Module. Disposing it closes the runspace, which ends the servers it started.
/// </summary>
public sealed class PowerShellSession : IDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public PowerShellSession(string? location = null)
    {
        InitialSessionState iss = InitialSessionState.CreateDefault2();
        iss.ImportPSModule(typeof(GetRemoteFileCommand).Assembly.Location);
        iss.Formats.Add(new SessionStateFormatEntry(Path.Join(AppContext.BaseDirectory, "FileShare.format.ps1xml")));
        Runspace = RunspaceFactory.CreateRunspace(iss);
        Runspace.Open();
        if (location is not null)
        {
            Run("param($Path) Set-Location -LiteralPath $Path", new { Path = location }).AssertNoErrors();
        }
    }

    public Runspace Runspace { get; }

    /// <summary>
    /// Runs <paramref name="script"/> (which may open with a param() block fed by <paramref name="parameters"/>'
    /// properties) to its end; a pipeline that does not end within the timeout fails the test.
    /// </summary>
    public Invocation Run(string script, object? parameters = null, TimeSpan? timeout = null)
    {
        using RunningInvocation running = Begin(script, parameters);
        return running.Wait(timeout ?? DefaultTimeout);
    }

    /// <summary>Starts <paramref name="script"/> without waiting, for tests that watch or stop it mid-way.</summary>
    public RunningInvocation Begin(string script, object? parameters = null)
    {
        PowerShellPipeline shell = PowerShellPipeline.Create(Runspace);
        shell.AddScript(script);
        if (parameters is not null)
        {
            foreach (var property in parameters.GetType().GetProperties())
            {
                shell.AddParameter(property.Name, property.GetValue(parameters));
            }
        }

        return new RunningInvocation(shell);
    }

    /// <summary>Starts one server on a system-chosen loopback port sharing <paramref name="root"/>.</summary>
    public FileShareServerJob StartServer(string root, string extra = "")
    {
        Invocation started = Run($"param($Path) Start-FileShareServer -Port 0 -Path $Path -BindAddress 127.0.0.1 {extra}", new { Path = root });
        started.AssertNoErrors();
        return Assert.Single(started.Objects<FileShareServerJob>());
    }

    public FileShareServerJob[] Jobs() => Run("Get-Job").Objects<FileShareServerJob>().ToArray();

    /// <summary>Closes the runspace (and with it the session's servers); a close that hangs fails the test instead of the run.</summary>
    public void Dispose()
    {
        Task closing = Task.Run(Runspace.Dispose);
        if (!closing.Wait(DefaultTimeout))
        {
            throw new TimeoutException($"Closing the runspace did not finish within {DefaultTimeout.TotalSeconds:0} s.");
        }
    }
}

/// <summary>A pipeline in flight.</summary>
public sealed class RunningInvocation : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly PSDataCollection<PSObject> _output = new();
    private readonly IAsyncResult _pending;

    internal RunningInvocation(PowerShellPipeline shell)
    {
        Shell = shell;
        _pending = shell.BeginInvoke<PSObject, PSObject>(null, _output);
    }

    public PowerShellPipeline Shell { get; }

    public bool IsCompleted => _pending.IsCompleted;

    /// <summary>What the pipeline has written so far, while it still runs.</summary>
    public List<PSObject> OutputSoFar => Snapshot(_output);

    /// <summary>Waits for the pipeline to end and collects what it wrote; stops it and fails the test on timeout.</summary>
    public Invocation Wait(TimeSpan timeout)
    {
        if (!_pending.AsyncWaitHandle.WaitOne(timeout))
        {
            Shell.BeginStop(null, null);
            Assert.Fail($"The pipeline did not finish within {timeout.TotalSeconds:0.#} s: {Shell.Commands.Commands.FirstOrDefault()?.CommandText}");
        }

        ErrorRecord? terminating = null;
        try
        {
            Shell.EndInvoke(_pending);
        }
        catch (PipelineStoppedException)
        {
            // Stopped on purpose (PowerShell.Stop, i.e. Ctrl+C); not an error of the command.
        }
        catch (RuntimeException e)
        {
            terminating = e.ErrorRecord;
        }

        List<ErrorRecord> errors = Snapshot(Shell.Streams.Error);
        if (terminating is not null && !errors.Any(e => ReferenceEquals(e.Exception, terminating.Exception)))
        {
            errors.Add(terminating);
        }

        return new Invocation(Snapshot(_output), errors, Snapshot(Shell.Streams.Progress), _clock.Elapsed, Snapshot(Shell.Streams.Verbose));
    }

    /// <summary>What a stream holds right now. (Enumerating a PSDataCollection that is still open blocks for more.)</summary>
    public static List<T> Snapshot<T>(PSDataCollection<T> collection)
    {
        while (true)
        {
            var items = new T[collection.Count];
            try
            {
                collection.CopyTo(items, 0);
                return [.. items];
            }
            catch (ArgumentException)
            {
                // The running pipeline added a record between the count and the copy: count again.
            }
        }
    }

    /// <summary>Stops the pipeline if it still runs; one that will not stop is left behind rather than hanging the test run.</summary>
    public void Dispose()
    {
        if (!_pending.IsCompleted)
        {
            Shell.BeginStop(null, null);
            if (!_pending.AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10)))
            {
                return;
            }
        }

        Shell.Dispose();
    }
}

/// <summary>What a finished pipeline wrote: objects, errors (a terminating one included) and progress.</summary>
public sealed record Invocation(IReadOnlyList<PSObject> Output, IReadOnlyList<ErrorRecord> Errors, IReadOnlyList<ProgressRecord> Progress, TimeSpan Duration, IReadOnlyList<VerboseRecord>? VerboseRecords = null)
{
    public IReadOnlyList<VerboseRecord> Verbose => VerboseRecords ?? [];

    public IEnumerable<T> Objects<T>() => Output.Select(o => o.BaseObject).OfType<T>();

    public Invocation AssertNoErrors()
    {
        Assert.True(Errors.Count == 0, "Unexpected errors:" + string.Concat(Errors.Select(e => $"{Environment.NewLine}  {e.FullyQualifiedErrorId}: {e.Exception.Message}")));
        return this;
    }

    /// <summary>Asserts exactly one error, with the stable id and category scripts match on, and returns it.</summary>
    public ErrorRecord SingleError(string id, ErrorCategory category)
    {
        Assert.True(Errors.Count == 1, $"Expected one {id} error, got {Errors.Count}:" + string.Concat(Errors.Select(e => $"{Environment.NewLine}  {e.FullyQualifiedErrorId}: {e.Exception.Message}")));
        ErrorRecord error = Errors[0];
        AssertError(error, id, category);
        return error;
    }

    public static void AssertError(ErrorRecord error, string id, ErrorCategory category)
    {
        Assert.StartsWith(id + ",", error.FullyQualifiedErrorId + ",");
        Assert.Equal(category, error.CategoryInfo.Category);
    }
}

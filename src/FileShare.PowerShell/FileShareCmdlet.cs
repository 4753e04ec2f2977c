using System.Collections.Concurrent;
using System.Management.Automation;
using System.Runtime.ExceptionServices;

namespace FileShare.PowerShell;

/// <summary>
/// Base for cmdlets whose work runs on background tasks. <see cref="StopProcessing"/> (Ctrl+C) cancels
/// <see cref="Cancellation"/>, which every await honours; background code never calls Write* itself but posts to
/// <see cref="Post"/>, and <see cref="PumpUntil"/> runs those posts on the pipeline thread.
/// </summary>
public abstract class FileShareCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly BlockingCollection<Action> _pipelineWork = new();

    private bool _disposed;

    private const int TickInterval = 250;
    private static readonly Action WakeUp = static () => { };

    protected CancellationToken Cancellation => _stopping.Token;

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>Queues work for the pipeline thread; safe from any thread.</summary>
    protected void Post(Action action)
    {
        try
        {
            _pipelineWork.Add(action);
        }
        catch (InvalidOperationException)
        {
            // The cmdlet has finished; there is nobody left to write to.
        }
    }

    /// <summary>
    /// Runs posted work on the pipeline thread until <paramref name="done"/> completes and nothing is left
    /// queued, calling <paramref name="tick"/> about four times a second (for progress).
    /// </summary>
    protected void PumpUntil(Task done, Action? tick = null)
    {
        // The end of the work posts a no-op, so the wait below ends the moment the work does; a poll left every
        // command waiting out the rest of its interval after the work was done (about 30 ms of a cold 1 KiB download).
        done.ContinueWith(static (_, cmdlet) => ((FileShareCmdlet)cmdlet!).Post(WakeUp), this, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var sinceTick = System.Diagnostics.Stopwatch.StartNew();
        Exception? stopped = null;
        while (!done.IsCompleted || (stopped is null && _pipelineWork.Count > 0))
        {
            int wait = tick is null || stopped is not null ? Timeout.Infinite : (int)Math.Max(0, TickInterval - sinceTick.ElapsedMilliseconds);
            if (_pipelineWork.TryTake(out Action? action, wait) && stopped is null)
            {
                stopped = RunUnlessStopped(action);
            }

            if (stopped is null && tick is not null && sinceTick.ElapsedMilliseconds >= TickInterval)
            {
                stopped = RunUnlessStopped(tick);
                sinceTick.Restart();
            }
        }

        if (stopped is not null)
        {
            ExceptionDispatchInfo.Throw(stopped);
        }
    }

    /// <summary>
    /// Once the pipeline stops (Ctrl+C, or a `Select-Object -First` further on) every Write* throws, and so does a
    /// WriteError under -ErrorAction Stop: the work is cancelled and the pump only waits for it to wind down (a download
    /// records its verified pieces, no file is renamed into place after the command has failed), because the pipeline,
    /// and in `pwsh -c` the process, ends as soon as the exception leaves the cmdlet.
    /// </summary>
    private Exception? RunUnlessStopped(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            _stopping.Cancel();
            return e;
        }
    }

    /// <summary>
    /// <paramref name="path"/> (the value of -<paramref name="parameter"/>, or its default) as a file-system path,
    /// resolved against the current location. On another provider (Env:, Function:, or any relative path while the
    /// location is there) it is a terminating <paramref name="errorId"/>: the provider would give a bare name, which
    /// .NET resolves against the process's working folder, a place the user never named.
    /// </summary>
    internal string FileSystemPath(string path, string parameter, string errorId, string? instead = null)
    {
        string fullPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out ProviderInfo provider, out _);
        if (provider.ImplementingType != typeof(Microsoft.PowerShell.Commands.FileSystemProvider))
        {
            ThrowTerminatingError(ErrorRecords.Create(errorId, ErrorCategory.InvalidArgument,
                MyInvocation.BoundParameters.ContainsKey(parameter)
                    ? $"-{parameter} '{path}' is on the {provider.Name} provider; give a path of the file system{instead}."
                    : $"The default {parameter.ToLowerInvariant()} '{path}' is relative to the current location, which is on the {provider.Name} provider; give -{parameter} a path of the file system, or Set-Location to one.",
                path));
        }

        return fullPath;
    }

    /// <summary>Pumps posted work until <paramref name="task"/> ends, then returns its result; Ctrl+C surfaces as a stopped pipeline.</summary>
    protected T Await<T>(Task<T> task)
    {
        PumpUntil(task);
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>
    /// Whether WriteVerbose would show anything (-Verbose, or a $VerbosePreference that is not SilentlyContinue or
    /// Ignore), so that a message per item nobody will see is neither built nor handed to the pipeline thread.
    /// </summary>
    protected bool VerboseWanted =>
        MyInvocation.BoundParameters.TryGetValue("Verbose", out object? flag)
            ? flag is SwitchParameter { IsPresent: true } or true
            : GetVariableValue("VerbosePreference") is not (ActionPreference.SilentlyContinue or ActionPreference.Ignore);

    protected void WriteFileShareError(FileShareException exception, object? target) =>
        WriteError(ErrorRecords.From(exception, target));

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            // A cmdlet that ends by an exception of its own is never sent StopProcessing: its work must not outlive it.
            _stopping.Cancel();
            _pipelineWork.CompleteAdding();
            _pipelineWork.Dispose();
            _stopping.Dispose();
        }
    }
}

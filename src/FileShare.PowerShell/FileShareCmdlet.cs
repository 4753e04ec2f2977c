using System.Collections.Concurrent;
using System.Management.Automation;
using System.Net;
using System.Security;
using FileShare.Protocol;

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
        var sinceTick = System.Diagnostics.Stopwatch.StartNew();
        while (!done.IsCompleted || _pipelineWork.Count > 0)
        {
            if (_pipelineWork.TryTake(out Action? action, millisecondsTimeout: 50))
            {
                action();
            }

            if (tick is not null && sinceTick.ElapsedMilliseconds >= 250)
            {
                tick();
                sinceTick.Restart();
            }
        }
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

    /// <summary>Runs whatever has been posted so far, without waiting.</summary>
    protected void DrainPosted()
    {
        while (_pipelineWork.TryTake(out Action? action))
        {
            action();
        }
    }

    /// <summary>Read when neither -AccessKey nor -AccessKeyPath is given, so a CI job can hand the key over without a file.</summary>
    public const string AccessKeyVariable = "FILESHARE_ACCESS_KEY";

    /// <summary>The access key from -AccessKey, else from the file -AccessKeyPath names, else from $env:FILESHARE_ACCESS_KEY; null when none is given.</summary>
    protected AccessKey? ResolveAccessKey(SecureString? key, string? path)
    {
        if (key is not null && path is not null)
        {
            ThrowTerminatingError(ErrorRecords.Create("AccessKeyConflict", ErrorCategory.InvalidArgument, "Give -AccessKey or -AccessKeyPath, not both.", path));
        }

        (string? text, string source) = (key, path) switch
        {
            ({ }, _) => (new NetworkCredential("", key).Password, "-AccessKey"),
            (_, { }) => (ReadAccessKeyFile(path), $"'{path}'"),
            _ => (Environment.GetEnvironmentVariable(AccessKeyVariable), "$env:" + AccessKeyVariable),
        };
        if (text is null || (key is null && path is null && text.Length == 0))
        {
            return null;
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            ThrowTerminatingError(ErrorRecords.Create("AccessKeyEmpty", ErrorCategory.InvalidArgument, $"The access key from {source} is empty.", source));
        }

        return AccessKey.FromText(text);
    }

    private string ReadAccessKeyFile(string path)
    {
        string fullPath = SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
        try
        {
            return File.ReadAllText(fullPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(ErrorRecords.Create("AccessKeyFileUnreadable", ErrorCategory.ReadError, $"Cannot read the access key from '{fullPath}': {e.Message}", path, e));
            throw;
        }
    }

    protected void WriteFileShareError(FileShareException exception, object? target) =>
        WriteError(ErrorRecords.From(exception, target));

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _pipelineWork.CompleteAdding();
            _pipelineWork.Dispose();
            _stopping.Dispose();
        }
    }
}

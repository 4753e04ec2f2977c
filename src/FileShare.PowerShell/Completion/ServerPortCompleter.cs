using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;
using FileShare.PowerShell.Jobs;

namespace FileShare.PowerShell.Completion;

/// <summary>Completes -Port with the ports this session's servers are running on.</summary>
public sealed class ServerPortCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        SessionServers.RunningIn(Runspace.DefaultRunspace)
            .OrderBy(job => job.Port)
            .Where(job => job.Port.ToString(System.Globalization.CultureInfo.InvariantCulture).StartsWith(wordToComplete, StringComparison.Ordinal))
            .Select(job => new CompletionResult(job.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), job.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), CompletionResultType.ParameterValue, $"port {job.Port} sharing {job.Root}"));
}

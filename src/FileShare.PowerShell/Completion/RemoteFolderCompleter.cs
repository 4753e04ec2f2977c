using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace FileShare.PowerShell.Completion;

/// <summary>Completes Get-RemoteFileList's -Path with the folders of the server the command line names, as -Name completes files.</summary>
public sealed class RemoteFolderCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string typed = RemoteNameCompleter.Typed(wordToComplete);
        return RemoteNameCompleter.Listing(fakeBoundParameters)
            .SelectMany(entry => FoldersOf(entry.Name))
            .Distinct(StringComparer.Ordinal)
            .Where(folder => folder.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.OrdinalIgnoreCase)
            .Select(folder => new CompletionResult(RemoteNameCompleter.Quote(folder), folder, CompletionResultType.ParameterValue, folder));
    }

    /// <summary>"a/b/c.txt" is in the folders "a" and "a/b".</summary>
    private static IEnumerable<string> FoldersOf(string name)
    {
        for (int slash = name.IndexOf('/'); slash > 0; slash = name.IndexOf('/', slash + 1))
        {
            yield return name[..slash];
        }
    }
}

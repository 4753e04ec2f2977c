using System.Management.Automation;
using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>
/// Refuses, at binding, a -ComputerName that cannot name a server (a URL, a path, a port out of range), with what to
/// write instead; from the pipeline, only that input object fails. Left to the lookup, each cost a "Name or service
/// not known" that named no mistake.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ComputerNameAttribute : ValidateEnumeratedArgumentsAttribute
{
    protected override void ValidateElement(object element)
    {
        if (element is string name && DownloadSource.ProblemWith(name) is { } problem)
        {
            throw new ValidationMetadataException(problem);
        }
    }
}

using System.Management.Automation;
using System.Net;
using System.Security;

namespace FileShare.PowerShell;

/// <summary>The cmdlets that take the share's access key: the server, which requires it, and the clients, which prove it.</summary>
public abstract class AccessKeyCmdlet : FileShareCmdlet
{
    /// <summary>The share's access key; the server and the client each prove they hold it, and it never crosses the network.</summary>
    [Parameter]
    public SecureString? AccessKey { get; set; }

    /// <summary>A file holding the access key (UTF-8; surrounding white space ignored), for scripts.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? AccessKeyPath { get; set; }

    /// <summary>Read when neither -AccessKey nor -AccessKeyPath is given, so a CI job can hand the key over without a file.</summary>
    public const string AccessKeyVariable = "FILESHARE_ACCESS_KEY";

    /// <summary>The access key from -AccessKey, else from the file -AccessKeyPath names, else from $env:FILESHARE_ACCESS_KEY; null when none is given.</summary>
    protected Protocol.AccessKey? ResolveAccessKey()
    {
        if (AccessKey is not null && AccessKeyPath is not null)
        {
            ThrowTerminatingError(ErrorRecords.Create("AccessKeyConflict", ErrorCategory.InvalidArgument, "Give -AccessKey or -AccessKeyPath, not both.", AccessKeyPath));
        }

        (string? text, string source) = (AccessKey, AccessKeyPath) switch
        {
            ({ } key, _) => (new NetworkCredential("", key).Password, "-AccessKey"),
            (_, { } path) => (ReadAccessKeyFile(path), $"'{path}'"),
            _ => (Environment.GetEnvironmentVariable(AccessKeyVariable), "$env:" + AccessKeyVariable),
        };
        if (text is null || (text.Length == 0 && AccessKey is null && AccessKeyPath is null))
        {
            // An empty variable is how some shells and CI systems leave one unset: no key.
            return null;
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            ThrowTerminatingError(ErrorRecords.Create("AccessKeyEmpty", ErrorCategory.InvalidArgument, $"The access key from {source} is empty.", source));
        }

        return Protocol.AccessKey.FromText(text);
    }

    private string ReadAccessKeyFile(string path)
    {
        string fullPath = FileSystemPath(path, nameof(AccessKeyPath), "InvalidAccessKeyPath");
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
}

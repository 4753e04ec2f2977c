using System.Collections;
using System.Collections.Concurrent;
using System.Management.Automation;
using System.Management.Automation.Language;
using FileShare.Client;
using FileShare.Protocol;

namespace FileShare.PowerShell.Completion;

/// <summary>
/// Completes -Name with the files of the server the command line names (-ComputerName, -Port; default
/// localhost:5000). Listings are cached for a few seconds and fetched with a short timeout, so pressing Tab never
/// hangs on a dead server: it just offers nothing.
/// </summary>
public sealed class RemoteNameCompleter : IArgumentCompleter
{
    private static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ListTimeout = TimeSpan.FromSeconds(2);
    private static readonly ConcurrentDictionary<string, (DateTime Fetched, IReadOnlyList<RemoteEntry> Entries)> Cache = new();

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string typed = Typed(wordToComplete);
        // Get-RemoteFileList's -Name takes wildcards: a name with [ ] * ? is offered escaped, or it would match nothing.
        bool takesWildcards = commandName.EndsWith("RemoteFileList", StringComparison.OrdinalIgnoreCase);
        return Listing(fakeBoundParameters)
            .Where(entry => entry.Name.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
            .Select(entry => new CompletionResult(Quote(takesWildcards ? WildcardPattern.Escape(entry.Name) : entry.Name), entry.Name, CompletionResultType.ParameterValue,
                $"{entry.Name} ({Units.Bytes(entry.Length)})"));
    }

    internal static string Typed(string wordToComplete) => wordToComplete.Trim('\'', '"');

    /// <summary>The whole share of the server the command line names (-ComputerName, -Port; default localhost:5000), or nothing.</summary>
    internal static IReadOnlyList<RemoteEntry> Listing(IDictionary bound)
    {
        DownloadSource server = DownloadSource.FromComputerName(First<string>(bound, "ComputerName") ?? "localhost", First<int?>(bound, "Port") ?? 5000);
        return Listing(server.Host, server.Port, bound);
    }

    private static IReadOnlyList<RemoteEntry> Listing(string host, int port, IDictionary bound)
    {
        string key = $"{host}:{port}";
        if (Cache.TryGetValue(key, out var cached) && DateTime.UtcNow - cached.Fetched < CacheLifetime)
        {
            return cached.Entries;
        }

        try
        {
            // Only literal arguments reach a completer, so a -AccessKey variable cannot be used here; a key file or the variable can.
            var options = new FileShareClientOptions
            {
                ConnectTimeout = ListTimeout,
                ReadTimeout = ListTimeout,
                AccessKey = First<string>(bound, "AccessKeyPath") is { } keyPath
                    ? Protocol.AccessKey.FromText(File.ReadAllText(FromSessionLocation(keyPath)))
                    : Environment.GetEnvironmentVariable(AccessKeyCmdlet.AccessKeyVariable) is { Length: > 0 } fromVariable ? Protocol.AccessKey.FromText(fromVariable) : null,
                CertificateThumbprint = First<string>(bound, "CertificateThumbprint"),
                UseTls = bound.Contains("UseTls"),
            };
            // Completers are synchronous by contract; every await below is ConfigureAwait(false), so this cannot deadlock.
            IReadOnlyList<RemoteEntry> entries = ListAsync(host, port, options).GetAwaiter().GetResult();
            Cache[key] = (DateTime.UtcNow, entries);
            return entries;
        }
        catch (Exception e) when (e is FileShareException or OperationCanceledException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static async Task<IReadOnlyList<RemoteEntry>> ListAsync(string host, int port, FileShareClientOptions options)
    {
        using var deadline = new CancellationTokenSource(ListTimeout * 2);
        using FileShareConnection connection = await FileShareConnection.ConnectAsync(host, port, options, deadline.Token).ConfigureAwait(false);
        return await connection.ListAsync("", recursive: true, deadline.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// A path as the command would read it: relative to the session's location (not the process's directory), with
    /// PowerShell drives and ~. Asked through a nested command: completion runs inside a pipeline, where the
    /// runspace's SessionStateProxy refuses calls.
    /// </summary>
    private static string FromSessionLocation(string path)
    {
        try
        {
            using var resolve = System.Management.Automation.PowerShell.Create(RunspaceMode.CurrentRunspace);
            resolve.AddCommand("Microsoft.PowerShell.Management\\Resolve-Path").AddParameter("LiteralPath", path).AddParameter("ErrorAction", ActionPreference.Ignore);
            return resolve.Invoke<PathInfo>().FirstOrDefault()?.ProviderPath ?? path;
        }
        catch (InvalidOperationException)
        {
            // Completion asked outside a runspace (an editor's own host): the process's directory is all there is.
            return path;
        }
    }

    private static T? First<T>(IDictionary parameters, string name)
    {
        object? value = parameters.Contains(name) ? parameters[name] : null;
        if (value is PSObject wrapped)
        {
            value = wrapped.BaseObject;
        }

        if (value is IEnumerable items and not string)
        {
            value = items.Cast<object?>().FirstOrDefault();
        }

        // PowerShell would turn a missing value into "" or 0; absent must stay absent so the defaults apply.
        return value is not null && LanguagePrimitives.TryConvertTo(value, out T? converted) ? converted : default;
    }

    internal static string Quote(string name) =>
        name.IndexOfAny([' ', '\'', '"', '$', '`', '(', ')', '{', '}', ';', ',', '&', '@', '#', '|', '<', '>']) >= 0
            ? "'" + name.Replace("'", "''") + "'"
            : name;
}

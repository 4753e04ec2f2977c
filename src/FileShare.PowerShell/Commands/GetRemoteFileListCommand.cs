using System.Management.Automation;
using FileShare.Client;
using FileShare.PowerShell.Completion;
using FileShare.Protocol;

namespace FileShare.PowerShell.Commands;

/// <summary>Lists the files servers share, one object per file per server; servers are asked in parallel.</summary>
[Cmdlet(VerbsCommon.Get, "RemoteFileList")]
[OutputType(typeof(RemoteFileInfo))]
public sealed class GetRemoteFileListCommand : FileShareClientCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ComputerName]
    public string[] ComputerName { get; set; } = ["localhost"];

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [PortRange]
    [ValidateRange(1, 65535)]
    public int[] Port { get; set; } = [5000];

    /// <summary>Wildcard patterns matched against the '/'-separated relative name.</summary>
    [Parameter(Position = 1)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string[]? Name { get; set; }

    /// <summary>Folder on the server to list, '/'-separated and relative to the shared folder.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(RemoteFolderCompleter))]
    public string Path { get; set; } = "";

    [Parameter]
    public SwitchParameter Recurse { get; set; }

    /// <summary>Include each file's SHA-256 (the server hashes a file once and reuses the result until it changes).</summary>
    [Parameter]
    public SwitchParameter Hash { get; set; }

    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 30;

    protected override void ProcessRecord()
    {
        FileShareClientOptions options = ClientOptions(TimeoutSec);
        List<WildcardPattern>? patterns = Name?.Select(Pattern).ToList();
        var queries = ComputerName.SelectMany(name => Port.Select(port => DownloadSource.FromComputerName(name, port)).Distinct())
            .Select(server => (Server: server, Listing: ListAsync(server.Host, server.Port, options))).ToList();
        // A name without wildcards that no server lists is an error, as Get-ChildItem makes it; a pattern may match nothing.
        var literalsUnmatched = Name?.Zip(patterns!).Where(p => !WildcardPattern.ContainsWildcardCharacters(p.First)).ToList() ?? [];
        var answered = new List<string>();
        while (queries.Count > 0)
        {
            // A server that answers is written out at once, not behind a slower one named before it (a host that is down
            // would hold back every other listing, and the downloads piped from them, for -TimeoutSec); among those that
            // have answered, the order of the arguments is kept.
            Await(Task.WhenAny(queries.Select(q => q.Listing)));
            foreach (var query in queries.Where(q => q.Listing.IsCompleted).ToList())
            {
                queries.Remove(query);
                if (WriteListing(query.Server, query.Listing, patterns, literalsUnmatched))
                {
                    answered.Add(query.Server.Endpoint);
                }
            }
        }

        foreach ((string name, _) in answered.Count == 0 ? [] : literalsUnmatched)
        {
            string where = Path.Length == 0 ? "" : $" under '{Path}'";
            string folder = Path.TrimEnd('/');
            string hint = folder.Length > 0 && !name.StartsWith(folder + "/", StringComparison.Ordinal)
                ? $" (-Name matches the path from the share's root, such as '{folder}/{name}')"
                : !Recurse && name.Contains('/') ? " (without -Recurse only the folder's own files are listed)" : "";
            WriteError(ErrorRecords.Create("RemoteFileNotFound", ErrorCategory.ObjectNotFound,
                $"'{name}' is not listed by {string.Join(", ", answered)}{where}{hint}.", name));
        }
    }

    /// <summary>Writes one server's matching files (or its error); whether it answered.</summary>
    private bool WriteListing(DownloadSource server, Task<IReadOnlyList<RemoteEntry>> listing, List<WildcardPattern>? patterns, List<(string First, WildcardPattern Second)> literalsUnmatched)
    {
        IReadOnlyList<RemoteEntry> entries;
        try
        {
            entries = Await(listing);
        }
        catch (FileShareException e)
        {
            WriteFileShareError(e, server.Endpoint);
            return false;
        }

        int written = 0;
        foreach (RemoteEntry entry in entries)
        {
            if (patterns is null || Name!.Zip(patterns).Any(p => Matches(p.First, p.Second, entry.Name)))
            {
                literalsUnmatched.RemoveAll(literal => literal.Second.IsMatch(entry.Name));
                if (Hash && entry.Kind == EntryKind.File && entry.Sha256 is null)
                {
                    WriteWarning($"{server.Endpoint} could not hash '{entry.Name}' (it changed while it was read, or cannot be read); it is listed without a hash.");
                }

                WriteObject(new RemoteFileInfo(entry, server.Host, server.Port));
                written++;
            }
        }

        WriteVerbose($"{server.Endpoint} listed {entries.Count:N0} file(s) under '{Path}'{(Recurse ? " and its subfolders" : "")}; {written:N0} written{(patterns is null ? "" : " (matching -Name)")}.");
        return true;
    }

    /// <summary>
    /// The whole relative name matches, or, for a wildcard pattern without a '/', its last part does, as a pattern in
    /// rsync's or git's filters: 'report-202?.*' finds reports in every folder, as '*.pdf' always did.
    /// </summary>
    private static bool Matches(string name, WildcardPattern pattern, string entryName) =>
        pattern.IsMatch(entryName)
        || (!name.Contains('/') && WildcardPattern.ContainsWildcardCharacters(name) && pattern.IsMatch(entryName[(entryName.LastIndexOf('/') + 1)..]));

    /// <summary>A -Name pattern, checked before any server is asked: a malformed one ('[a') is one clear error.</summary>
    private WildcardPattern Pattern(string name)
    {
        WildcardPattern pattern = WildcardPattern.Get(name, WildcardOptions.IgnoreCase | WildcardOptions.CultureInvariant);
        try
        {
            pattern.IsMatch("");
        }
        catch (WildcardPatternException e)
        {
            ThrowTerminatingError(ErrorRecords.Create("InvalidNamePattern", ErrorCategory.InvalidArgument, $"-Name '{name}' is not a valid wildcard pattern: {e.Message}", name, e));
        }

        return pattern;
    }

    private async Task<IReadOnlyList<RemoteEntry>> ListAsync(string host, int port, FileShareClientOptions options)
    {
        // Taken before the first await: a query still running after the command ended must not touch the disposed cmdlet.
        CancellationToken cancellation = Cancellation;
        using FileShareConnection connection = await FileShareConnection.ConnectAsync(host, port, options, cancellation).ConfigureAwait(false);
        // Piece maps always: partial copies are listed (IsPartial) so Get-RemoteFile can draw pieces from them too.
        ListOptions listing = ListOptions.WithPieceMaps | (Recurse ? ListOptions.Recursive : ListOptions.None) | (Hash ? ListOptions.WithHashes : ListOptions.None);
        return await connection.ListAsync(Path, listing, cancellation).ConfigureAwait(false);
    }
}

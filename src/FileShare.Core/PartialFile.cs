namespace FileShare;

/// <summary>
/// Where a download lives until it is complete: a hidden file beside its destination, named after it, ending in
/// ".partial", with its state record (<see cref="PartialState"/>) beside it. Servers never list or serve these names
/// as such; a partial copy that has a state record is offered under the final name, for the pieces it holds.
/// </summary>
public static class PartialFile
{
    public const string Suffix = ".partial";

    public static string PathFor(string destination)
    {
        string folder = Path.GetDirectoryName(destination)!;
        return Path.Join(folder, "." + Path.GetFileName(destination) + Suffix);
    }

    /// <summary>The destination a partial file's path stands for ("/d/a.bin" for "/d/.a.bin.partial").</summary>
    public static string DestinationOf(string partialPath) =>
        Path.Join(Path.GetDirectoryName(partialPath), FinalNameOf(Path.GetFileName(partialPath)));

    /// <summary>The final name a partial file stands for ("a.bin" for ".a.bin.partial"), or null for any other name.</summary>
    public static string? FinalNameOf(string fileName) =>
        fileName.Length > Suffix.Length + 1 && fileName[0] == '.' && fileName.EndsWith(Suffix, StringComparison.Ordinal)
            ? fileName[1..^Suffix.Length]
            : null;

    /// <summary>A partial file, its state record, or the record's temporary twin: names only downloads create.</summary>
    public static bool IsPartialName(string fileName) =>
        FinalNameOf(fileName) is not null
        || (fileName.EndsWith(Suffix + PartialState.Suffix, StringComparison.Ordinal) && FinalNameOf(fileName[..^PartialState.Suffix.Length]) is not null)
        || (fileName.EndsWith(Suffix + PartialState.Suffix + ".tmp", StringComparison.Ordinal) && FinalNameOf(fileName[..^(PartialState.Suffix.Length + 4)]) is not null);

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the caller is already reporting the error that brought it here.
        }
    }

    /// <summary>Removes a partial file and its state record (best effort).</summary>
    public static void Discard(string partialPath)
    {
        TryDelete(PartialState.PathFor(partialPath));
        TryDelete(partialPath);
    }
}

namespace FileShare;

/// <summary>
/// Where a download lives until it is complete: a hidden file beside its destination, named after it, ending in
/// ".partial". Servers never list or serve such names, so a share that is also a download target stays clean.
/// </summary>
public static class PartialFile
{
    public const string Suffix = ".partial";

    public static string PathFor(string destination)
    {
        string folder = Path.GetDirectoryName(destination)!;
        return Path.Join(folder, "." + Path.GetFileName(destination) + Suffix);
    }

    public static bool IsPartialName(string fileName) =>
        fileName.Length > Suffix.Length + 1 && fileName[0] == '.' && fileName.EndsWith(Suffix, StringComparison.Ordinal);

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
}

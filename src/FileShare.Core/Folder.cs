namespace FileShare;

/// <summary>Folders the server shares and the client downloads into.</summary>
public static class Folder
{
    /// <summary>
    /// Makes <paramref name="path"/> and its parents, saying plainly when a file stands where one of them should be:
    /// .NET says only "the file already exists", which reads as if the folder did.
    /// </summary>
    public static void Create(string path)
    {
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (IOException e) when (FileInTheWay(path) is { } file)
        {
            throw new IOException(file == path ? $"'{path}' is a file, not a folder." : $"'{file}' is a file, so it cannot hold the folder '{path}'.", e);
        }
    }

    private static string? FileInTheWay(string path)
    {
        for (string? ancestor = Path.TrimEndingDirectorySeparator(path); !string.IsNullOrEmpty(ancestor); ancestor = Path.GetDirectoryName(ancestor))
        {
            if (File.Exists(ancestor))
            {
                return ancestor;
            }
        }

        return null;
    }
}

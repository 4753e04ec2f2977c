using System.Text;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// A requested path as the share answers it: resolved inside the root and opened, or refused with the status and
/// reason the reply carries.
/// </summary>
internal sealed class ShareLookup(FileShareServer server)
{
    public bool TryResolve(string path, out string fullPath, out StatusCode status, out string? reason)
    {
        if (Encoding.UTF8.GetByteCount(path) > server.Options.MaxNameBytes)
        {
            server.Statistics.RequestOverLimit();
            (fullPath, status, reason) = (server.Root, StatusCode.LimitExceeded, $"the name is longer than the server's limit of {server.Options.MaxNameBytes} bytes");
            return false;
        }

        if (SharePath.TryResolve(server.Root, path, out fullPath, out reason))
        {
            status = StatusCode.Ok;
            return true;
        }

        status = StatusCode.PathRefused;
        return false;
    }

    /// <summary>Opens the file a requested path names; null with the status and reason to refuse it with when it cannot be.</summary>
    public ServedFile? TryOpenForRead(string path, out StatusCode status, out string? reason)
    {
        if (TryOpenPlainFile(path) is { } plain)
        {
            (status, reason) = (StatusCode.Ok, null);
            return plain;
        }

        return TryFindFile(path, out FileInfo? file, out status, out reason) ? TryOpenConfined(file!.FullName, out status, out reason) : null;
    }

    /// <summary>Opens a file of the share; null with the status and reason to refuse it with when it cannot be.</summary>
    public ServedFile? TryOpenConfined(string fullPath, out StatusCode status, out string? reason)
    {
        try
        {
            (status, reason) = (StatusCode.Ok, null);
            return new ServedFile(ShareFile.OpenConfined(server.Root, fullPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            (status, reason) = (Classify(e), e.Message);
            return null;
        }
    }

    /// <summary>The partial copy offered under <paramref name="path"/> when the share has no whole file of that name.</summary>
    public PartialCopy? FindPartialCopy(string path) =>
        path.Length > 0 && SharePath.TryResolve(server.Root, path, out string fullPath, out _) ? PartialCopy.Find(fullPath) : null;

    public static StatusCode Classify(Exception e) => e switch
    {
        NotARegularFileException => StatusCode.NotAFile,
        FileChangedException => StatusCode.FileChanged,
        FileNotFoundException or DirectoryNotFoundException => StatusCode.NotFound,
        UnauthorizedAccessException => StatusCode.PathRefused,
        _ => StatusCode.ServerError,
    };

    /// <summary>
    /// The usual request, a regular file named without links, in one system call that keeps it inside the share (the
    /// root is link-free, see <see cref="SharePath.RealRoot"/>); null for every other case, and for a name the rule
    /// refuses, which the full lookup then answers.
    /// </summary>
    private ServedFile? TryOpenPlainFile(string path)
    {
        // Under a third of the limit in characters is under it in UTF-8 bytes; a longer name is counted by the full lookup.
        if (!ShareFile.OpensWithoutLinks || path.Length == 0 || path.Length > server.Options.MaxNameBytes / 3
            || !SharePath.TrySplit(path, out string[] segments, out _) || segments.Length == 0 || PartialFile.IsPartialName(segments[^1]))
        {
            return null;
        }

        return ShareFile.TryOpenWithoutLinks(Path.Join(server.Root, path));
    }

    private bool TryFindFile(string path, out FileInfo? file, out StatusCode status, out string? reason)
    {
        file = null;
        if (!TryResolve(path, out string fullPath, out status, out reason))
        {
            return false;
        }

        // One stat for the usual case, a file; a folder (FileInfo.Exists is false for one) costs a second.
        var info = new FileInfo(fullPath);
        if (path.Length == 0 || (!info.Exists && Directory.Exists(fullPath)))
        {
            (status, reason) = (StatusCode.NotAFile, "not a file");
            return false;
        }

        if (!info.Exists || PartialFile.IsPartialName(info.Name))
        {
            (status, reason) = (StatusCode.NotFound, "no such file");
            return false;
        }

        file = info;
        return true;
    }
}

using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>Walks a shared folder and yields the files a client may read, as wire names.</summary>
internal static class ShareListing
{
    private static readonly EnumerationOptions Options = new()
    {
        IgnoreInaccessible = true,
        AttributesToSkip = 0,
        RecurseSubdirectories = false,
        ReturnSpecialDirectories = false,
    };

    /// <param name="withPartialCopies">Also yield partial copies (see <see cref="PartialCopy"/>) under their final names.</param>
    /// <param name="unservable">Told the relative name of each entry left out because no request could name it.</param>
    public static IEnumerable<RemoteEntry> Enumerate(string root, string folder, string prefix, bool recursive, bool withPartialCopies = false, Action<string>? unservable = null)
    {
        var pending = new Stack<(string Folder, string Prefix, Visit Visit)>();
        pending.Push((folder, prefix, new Visit(SharePath.RealRoot(folder), null)));
        while (pending.Count > 0)
        {
            (string current, string currentPrefix, Visit visit) = pending.Pop();
            FileSystemInfo[] children;
            try
            {
                children = new DirectoryInfo(current).GetFileSystemInfos("*", Options);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            Array.Sort(children, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
            var subfolders = new List<(string, string, Visit)>();
            foreach (FileSystemInfo child in children)
            {
                if (!IsServableName(child.Name))
                {
                    unservable?.Invoke(currentPrefix + child.Name);
                    continue;
                }

                FileSystemInfo? target = ConfinedTarget(root, child);
                string name = currentPrefix + child.Name;
                // Pipes, sockets and devices have no length: only an empty entry needs asking what it is.
                if (target is FileInfo file && !PartialFile.IsPartialName(child.Name) && (file.Length > 0 || ShareFile.IsRegularFile(file.FullName)))
                {
                    yield return new RemoteEntry(name, file.Length, file.LastWriteTimeUtc);
                }
                else if (target is FileInfo && withPartialCopies && PartialFile.FinalNameOf(child.Name) is { } finalName
                    && PartialCopy.Find(Path.Join(current, finalName)) is { } copy)
                {
                    yield return copy.Entry(currentPrefix + finalName);
                }
                else if (target is DirectoryInfo && recursive
                    && new Visit(target == child ? Path.Join(visit.RealPath, child.Name) : target.FullName, visit) is { IsLoop: false } inside)
                {
                    subfolders.Add((Path.Join(current, child.Name), name + "/", inside));
                }
            }

            for (int i = subfolders.Count - 1; i >= 0; i--)
            {
                pending.Push(subfolders[i]);
            }
        }
    }

    /// <summary>
    /// A folder being listed, by its real path, and the folder it was reached from. A symlink back to a folder on
    /// the way down (<c>ln -s . self</c>, <c>ln -s .. up</c>) is a loop and is not followed, as <c>find -L</c> does;
    /// without this one such link made a recursive listing repeat the tree until the path grew too long.
    /// </summary>
    private sealed record Visit(string RealPath, Visit? From)
    {
        public bool IsLoop
        {
            get
            {
                for (Visit? above = From; above is not null; above = above.From)
                {
                    if (string.Equals(above.RealPath, RealPath, StringComparison.Ordinal))
                    {
                        return true;
                    }
                }

                return false;
            }
        }
    }

    /// <summary>
    /// Whether a request could name the entry: not with a backslash or a control character (the wire rule refuses
    /// them, and a client would refuse a listing that offered one), nor with bytes that are not UTF-8, which reach
    /// .NET as U+FFFD and so name no file a request could open.
    /// </summary>
    private static bool IsServableName(string name) =>
        !name.Contains('\uFFFD') && SharePath.TrySplit(name, out string[] segments, out _) && segments.Length == 1;

    /// <summary>The entry itself, or for a symlink the thing it leads to, when that stays inside the root.</summary>
    private static FileSystemInfo? ConfinedTarget(string root, FileSystemInfo entry)
    {
        if (entry.LinkTarget is null)
        {
            return entry;
        }

        try
        {
            FileSystemInfo? final = entry.ResolveLinkTarget(returnFinalTarget: true);
            if (final is null || !final.Exists)
            {
                return null;
            }

            string real = SharePath.RealRoot(final.FullName);
            if (!SharePath.IsInside(root, real))
            {
                return null;
            }

            return Directory.Exists(real) ? new DirectoryInfo(real) : new FileInfo(real);
        }
        catch (IOException)
        {
            return null;
        }
    }
}

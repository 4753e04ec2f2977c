using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// A download's exclusive hold on its destination's partial file, taken before anything reads, empties or removes it
/// and kept until it is renamed into place or discarded. Two downloads into one destination (two sessions, two
/// runspaces) therefore never write, resume from or rename each other's bytes: the second is refused with
/// <see cref="FileShareErrorKind.DestinationInUse"/>. The lock is the runtime's own exclusive open (flock on Unix, a
/// sharing mode on Windows), so it ends with the process however that ends.
/// </summary>
internal sealed class PartialHold : IDisposable
{
    // The runtime reports a lock held elsewhere as an IOException carrying the OS error: EWOULDBLOCK on Unix
    // (11 on Linux, 35 on macOS and the BSDs), ERROR_SHARING_VIOLATION on Windows.
    private static readonly int LockedByAnother = OperatingSystem.IsWindows() ? unchecked((int)0x80070020) : OperatingSystem.IsLinux() ? 11 : 35;

    /// <summary>
    /// How often a partial file that vanishes, is replaced or cannot be removed between two steps is tried again:
    /// a race with another download ends within a couple of tries; anything longer is a file that will not go away.
    /// </summary>
    private const int Attempts = 4;

    private bool _released;

    private PartialHold(string path, string destination, SafeFileHandle handle)
    {
        Path = path;
        Destination = destination;
        Handle = handle;
    }

    public string Path { get; }

    /// <summary>The final name the partial file is renamed to.</summary>
    public string Destination { get; }

    public SafeFileHandle Handle { get; }

    /// <summary>Holds the partial file an earlier download left, as it is; null when there is none.</summary>
    /// <exception cref="FileShareException">Another download holds it (<see cref="FileShareErrorKind.DestinationInUse"/>).</exception>
    /// <exception cref="FileShareException">The name is a link, or keeps naming another file than the one opened (<see cref="FileShareErrorKind.LocalWriteFailed"/>).</exception>
    public static PartialHold? TryTakeExisting(string partial, string destination)
    {
        // Most downloads find none: a stat says so without the cost of an exception per file.
        for (int attempt = 1; File.Exists(partial); attempt++)
        {
            RefuseLink(partial, destination);
            if (attempt > Attempts)
            {
                throw Unusable(partial, destination, "it was replaced each time it was opened");
            }

            SafeFileHandle handle;
            try
            {
                handle = File.OpenHandle(partial, FileMode.Open, FileAccess.ReadWrite, System.IO.FileShare.None);
            }
            catch (IOException e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return null;
            }
            catch (IOException e) when (e.HResult == LockedByAnother)
            {
                throw InUse(partial, destination);
            }

            if (StillNamedBy(handle, partial))
            {
                return new PartialHold(partial, destination, handle);
            }

            // Locked only after its holder renamed it into place or removed it: that file is not ours to touch.
            handle.Dispose();
        }

        return null;
    }

    /// <summary>
    /// A new, empty partial file preallocated to <paramref name="length"/>. An earlier one is held before it is
    /// removed, so one that another download is writing is never removed.
    /// </summary>
    public static PartialHold CreateNew(string partial, string destination, long length)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                // CreateNew: a file this call made itself, so no earlier holder can have renamed it from under the lock.
                var hold = new PartialHold(partial, destination, File.OpenHandle(partial, FileMode.CreateNew, FileAccess.ReadWrite, System.IO.FileShare.None, FileOptions.None, length));
                if (OperatingSystem.IsWindows())
                {
                    File.SetAttributes(partial, File.GetAttributes(partial) | FileAttributes.Hidden);
                }

                return hold;
            }
            catch (IOException e) when (e is not (DirectoryNotFoundException or FileNotFoundException) && (File.Exists(partial) || IsLink(partial)))
            {
                // File.Exists is false for a link to a folder: that one is refused here, with the rest.
                RefuseLink(partial, destination);
                if (attempt > Attempts)
                {
                    throw Unusable(partial, destination, "an earlier partial file under that name could not be removed", e);
                }

                TryTakeExisting(partial, destination)?.Discard();
            }
        }
    }

    /// <summary>Renames the complete file into place while it is still held, so no other download can take it first.</summary>
    public void MoveTo(bool overwrite)
    {
        // Windows refuses to rename a file that is open without delete sharing, so there the hold ends just before.
        if (OperatingSystem.IsWindows())
        {
            Dispose();
        }

        File.Move(Path, Destination, overwrite);
        Dispose();
    }

    /// <summary>Removes the partial file and its state record, then lets go; nothing once let go (the name may be another download's by then).</summary>
    public void Discard()
    {
        if (!_released)
        {
            PartialFile.Discard(Path);
            Dispose();
        }
    }

    public void Dispose()
    {
        if (!_released)
        {
            _released = true;
            Handle.Dispose();
        }
    }

    private static FileShareException InUse(string partial, string destination) =>
        new(FileShareErrorKind.DestinationInUse, $"'{destination}' is being downloaded by another Get-RemoteFile (its partial file '{partial}' is locked); nothing was changed. Try again once that download ends.", path: destination);

    /// <summary>
    /// A link under a partial name is not a partial file of ours: writing through it would change whatever it leads
    /// to, and removing it would not be ours to do either.
    /// </summary>
    private static void RefuseLink(string partial, string destination)
    {
        if (IsLink(partial))
        {
            throw Unusable(partial, destination, "it is a link, not a partial file Get-RemoteFile made; nothing was written through it");
        }
    }

    private static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    private static FileShareException Unusable(string partial, string destination, string why, Exception? inner = null) =>
        new(FileShareErrorKind.LocalWriteFailed, $"Could not download into '{destination}': its partial file '{partial}' cannot be used ({why}). Remove it and try again.", path: destination, inner: inner);

    /// <summary>Whether <paramref name="path"/> still names the file <paramref name="handle"/> has open.</summary>
    private static bool StillNamedBy(SafeFileHandle handle, string path)
    {
        if (OperatingSystem.IsLinux())
        {
            // The kernel's own name for the open file: the new name after a rename, "... (deleted)" after a removal.
            string? name = new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget;
            if (name is not null)
            {
                return string.Equals(name, System.IO.Path.GetFullPath(path), StringComparison.Ordinal);
            }
        }

        // Elsewhere a removal or rename shows as the name being gone; a new file made under it in that same moment is not caught.
        return File.Exists(path);
    }
}

using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Server;

/// <summary>
/// Opens shared files for reading without ever waiting on one. A named pipe (FIFO) in a shared folder would block
/// an ordinary open until something writes to it, holding a pool thread, the file's hash slot and the server's stop
/// with it; so on Linux and macOS the open is non-blocking, and anything but a regular file is refused from the same
/// handle that would have been read, with no window in which the path could be swapped.
/// </summary>
internal static class ShareFile
{
    private const System.IO.FileShare ShareWithWriters = System.IO.FileShare.ReadWrite | System.IO.FileShare.Delete;

    /// <summary>Opens <paramref name="fullPath"/> for reading; a pipe, socket or device throws <see cref="NotARegularFileException"/>.</summary>
    public static FileStream OpenRead(string fullPath, FileOptions options = FileOptions.Asynchronous)
    {
        if (NonBlockingFlags() is not { } flags)
        {
            return new FileStream(fullPath, FileMode.Open, FileAccess.Read, ShareWithWriters, bufferSize: 0, options);
        }

        int descriptor = Open(fullPath, flags);
        if (descriptor < 0)
        {
            throw ErrorFor(Marshal.GetLastPInvokeError(), fullPath);
        }

        var handle = new SafeFileHandle(descriptor, ownsHandle: true);
        FileStream probe;
        try
        {
            probe = new FileStream(handle, FileAccess.Read, bufferSize: 0);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        using (probe)
        {
            // A pipe or socket cannot seek; a folder opens too (read-only) and says so in its attributes.
            if (!probe.CanSeek || File.GetAttributes(handle).HasFlag(FileAttributes.Directory))
            {
                throw new NotARegularFileException();
            }

            // The stream to serve is opened again through the descriptor, so it is the very file just checked (sendfile
            // needs a handle opened for asynchronous use, which one made here cannot claim to be).
            return new NamedFileStream($"/dev/fd/{descriptor}", fullPath, options);
        }
    }

    /// <summary>open(2) flags for a read that cannot block (and cannot make a terminal the process's own), where known.</summary>
    private static int? NonBlockingFlags()
    {
        if (OperatingSystem.IsLinux())
        {
            const int NonBlock = 0x800, NoControllingTerminal = 0x100, CloseOnExec = 0x80000;
            return NonBlock | NoControllingTerminal | CloseOnExec;
        }

        if (OperatingSystem.IsMacOS())
        {
            const int NonBlock = 0x4, NoControllingTerminal = 0x20000, CloseOnExec = 0x1000000;
            return NonBlock | NoControllingTerminal | CloseOnExec;
        }

        return null;
    }

    private static Exception ErrorFor(int errno, string fullPath)
    {
        const int NoPermission = 1, NoEntry = 2, NoSuchDevice = 6, AccessDenied = 13, NotADirectory = 20;
        string message = $"'{fullPath}': {Marshal.GetPInvokeErrorMessage(errno)}";
        return errno switch
        {
            NoEntry or NotADirectory => new FileNotFoundException(message, fullPath),
            NoPermission or AccessDenied => new UnauthorizedAccessException(message),
            NoSuchDevice => new NotARegularFileException(), // a socket, or a device with nothing behind it
            _ => new IOException(message),
        };
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    /// <summary>A stream opened through /dev/fd keeps the path the file was asked for by (the hash cache is keyed on it).</summary>
    private sealed class NamedFileStream(string descriptorPath, string path, FileOptions options)
        : FileStream(descriptorPath, FileMode.Open, FileAccess.Read, ShareWithWriters, bufferSize: 0, options)
    {
        public override string Name => path;
    }
}

/// <summary>A shared name that leads to a pipe, socket or device rather than a file.</summary>
internal sealed class NotARegularFileException() : IOException("not a regular file (a pipe, socket or device)");

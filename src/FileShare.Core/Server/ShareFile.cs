using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Server;

/// <summary>
/// Opens shared files for reading without ever waiting on one. A named pipe (FIFO) in a shared folder would block
/// an ordinary open until something writes to it, holding a pool thread, the file's hash slot and the server's stop
/// with it; so on Linux and macOS the open is non-blocking, and anything but a regular file (a pipe, a socket, a
/// device such as a copy of /dev/zero) is refused from the same handle that would have been read, with no window in
/// which the path could be swapped.
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

        using var handle = new SafeFileHandle(descriptor, ownsHandle: true);
        if (!(IsRegular(descriptor, "", EmptyPathMeansDescriptor) ?? IsSeekableFile(handle)))
        {
            throw new NotARegularFileException();
        }

        // The stream to serve is opened again through the descriptor, so it is the very file just checked (sendfile
        // needs a handle opened for asynchronous use, which one made here cannot claim to be).
        return new NamedFileStream($"/dev/fd/{descriptor}", fullPath, options);
    }

    /// <summary>
    /// Opens a file by a full path in one call that follows no link anywhere on the way (openat2 with
    /// RESOLVE_NO_SYMLINKS, Linux 5.6 and later), then describes it from the same handle: three system calls where the
    /// full lookup makes about twenty. For a path made of a link-free root and segments that are neither "." nor "..",
    /// that alone keeps the file inside the root. Null for anything but a regular file reached without links, and
    /// wherever the call is missing; the full lookup then decides and words the refusal, so both give one answer.
    /// </summary>
    public static ServedFile? TryOpenWithoutLinks(string fullPath)
    {
        if (!OpensWithoutLinks || NonBlockingFlags() is not { } flags)
        {
            return null;
        }

        const ulong ResolveNoSymlinks = 0x04;
        const int NoSuchCall = 38, NotPermitted = 1;
        var how = new OpenHow { Flags = (ulong)flags, Resolve = ResolveNoSymlinks };
        long descriptor = OpenAt2(OpenAt2Number, CurrentFolder, fullPath, ref how, (nuint)Marshal.SizeOf<OpenHow>());
        if (descriptor < 0)
        {
            // A kernel before 5.6, or a sandbox (seccomp) that refuses calls it does not know, refuses every name alike.
            if (Marshal.GetLastPInvokeError() is NoSuchCall or NotPermitted)
            {
                s_openat2Missing = true;
            }

            return null;
        }

        var handle = new SafeFileHandle((IntPtr)descriptor, ownsHandle: true);
        if (Describe((int)descriptor) is not (true, FileVersion version))
        {
            handle.Dispose();
            return null;
        }

        return new ServedFile(handle, fullPath, version);
    }

    /// <summary>Whether <see cref="TryOpenWithoutLinks"/> can open anything here.</summary>
    public static bool OpensWithoutLinks => !s_openat2Missing;

    /// <summary>The file open on <paramref name="file"/> as a stream sendfile can take, opened again through its descriptor.</summary>
    public static FileStream ReopenForSendfile(SafeFileHandle file, string fullPath)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            return new NamedFileStream($"/dev/fd/{file.DangerousGetHandle()}", fullPath, FileOptions.Asynchronous);
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Opens <paramref name="fullPath"/> as <see cref="OpenRead"/> does, then checks the opened file lies inside
    /// <paramref name="root"/>: a folder swapped for a link after the path was resolved cannot lead outside.
    /// </summary>
    /// <exception cref="UnauthorizedAccessException">The opened file lies outside the share.</exception>
    public static FileStream OpenConfined(string root, string fullPath, FileOptions options = FileOptions.Asynchronous)
    {
        FileStream stream = OpenRead(fullPath, options);
        if (!SharePath.IsOpenedInside(root, stream.SafeFileHandle))
        {
            stream.Dispose();
            throw new UnauthorizedAccessException("The path leads outside the shared folder.");
        }

        return stream;
    }

    /// <summary>
    /// Whether a path (symlinks followed) is a regular file, where the system says so without opening it (Linux);
    /// true where it cannot tell, since opening it for a download still refuses anything else.
    /// </summary>
    public static bool IsRegularFile(string fullPath) => IsRegular(CurrentFolder, fullPath, 0) ?? true;

    /// <summary>The version of the file open on <paramref name="file"/>.</summary>
    public static FileVersion VersionOf(SafeFileHandle file) =>
        VersionFromStatx((int)file.DangerousGetHandle(), "", EmptyPathMeansDescriptor)
        ?? new FileVersion(RandomAccess.GetLength(file), File.GetLastWriteTimeUtc(file), 0, 0);

    /// <summary>The version of the file at <paramref name="fullPath"/> (symlinks followed).</summary>
    /// <exception cref="IOException">It is gone or cannot be read.</exception>
    public static FileVersion VersionOf(string fullPath)
    {
        if (VersionFromStatx(CurrentFolder, fullPath, 0) is { } version)
        {
            return version;
        }

        var info = new FileInfo(fullPath);
        return new FileVersion(info.Length, info.LastWriteTimeUtc, 0, 0);
    }

    private const uint TypeOnly = 0x1, VersionFields = 0x40 | 0x80 | 0x100 | 0x200; // type; modified, changed, inode, size
    private const int CurrentFolder = -100, EmptyPathMeansDescriptor = 0x1000;
    private static bool s_statxMissing = !OperatingSystem.IsLinux();
    private static bool s_openat2Missing = !OperatingSystem.IsLinux();
    // openat2 has one number on every Linux architecture (it came after the numbers were unified).
    private const long OpenAt2Number = 437;

    private static FileVersion? VersionFromStatx(int folder, string path, int flags)
    {
        Span<byte> buffer = stackalloc byte[256];
        return StatxInto(buffer, folder, path, flags, VersionFields) switch
        {
            null => null,
            0 => VersionIn(buffer),
            int error => throw ErrorFor(error, path),
        };
    }

    /// <summary>Whether the file open on <paramref name="descriptor"/> is a regular one, and its version, in one statx(2); null if it cannot say.</summary>
    private static (bool Regular, FileVersion Version)? Describe(int descriptor)
    {
        Span<byte> buffer = stackalloc byte[256];
        return StatxInto(buffer, descriptor, "", EmptyPathMeansDescriptor, TypeOnly | VersionFields) == 0 ? (IsRegularIn(buffer), VersionIn(buffer)) : null;
    }

    /// <summary>The file type from statx(2); null where there is none.</summary>
    private static bool? IsRegular(int folder, string path, int flags)
    {
        Span<byte> buffer = stackalloc byte[256];
        return StatxInto(buffer, folder, path, flags, TypeOnly) switch
        {
            null => null,
            0 => IsRegularIn(buffer),
            // Gone or unreadable: the open that follows says which.
            _ => path.Length == 0 ? null : true,
        };
    }

    /// <summary>statx(2), whose buffer is laid out alike on every Linux architecture: 0, or the error number; null where the C library has none.</summary>
    private static int? StatxInto(Span<byte> buffer, int folder, string path, int flags, uint mask)
    {
        if (s_statxMissing)
        {
            return null;
        }

        try
        {
            return Statx(folder, path, flags, mask, ref MemoryMarshal.GetReference(buffer)) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        catch (EntryPointNotFoundException)
        {
            // A C library older than statx (glibc 2.28, musl 1.2.5).
            s_statxMissing = true;
            return null;
        }
    }

    private static FileVersion VersionIn(ReadOnlySpan<byte> statx)
    {
        const int InodeOffset = 32, SizeOffset = 40, ChangedOffset = 96, ModifiedOffset = 112;
        return new FileVersion(
            MemoryMarshal.Read<long>(statx[SizeOffset..]),
            DateTime.UnixEpoch.AddTicks(TicksOf(statx[ModifiedOffset..])),
            TicksOf(statx[ChangedOffset..]),
            MemoryMarshal.Read<ulong>(statx[InodeOffset..]));

        // A statx_timestamp: seconds (s64), then nanoseconds (u32).
        static long TicksOf(ReadOnlySpan<byte> timestamp) =>
            (MemoryMarshal.Read<long>(timestamp) * TimeSpan.TicksPerSecond) + (MemoryMarshal.Read<uint>(timestamp[8..]) / 100);
    }

    private static bool IsRegularIn(ReadOnlySpan<byte> statx)
    {
        const int ModeOffset = 28, TypeMask = 0xF000, RegularFile = 0x8000;
        return (MemoryMarshal.Read<ushort>(statx[ModeOffset..]) & TypeMask) == RegularFile;
    }

    /// <summary>Without a file type to read: a pipe or socket cannot seek, and a folder says so in its attributes.</summary>
    private static bool IsSeekableFile(SafeFileHandle handle)
    {
        using var probe = new FileStream(new SafeFileHandle(handle.DangerousGetHandle(), ownsHandle: false), FileAccess.Read, bufferSize: 0);
        return probe.CanSeek && !File.GetAttributes(handle).HasFlag(FileAttributes.Directory);
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

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long OpenAt2(long number, int folder, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, ref OpenHow how, nuint size);

    /// <summary>struct open_how of openat2(2).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int folder, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, ref byte buffer);

    /// <summary>A stream opened through /dev/fd keeps the path the file was asked for by (the hash cache is keyed on it).</summary>
    private sealed class NamedFileStream(string descriptorPath, string path, FileOptions options)
        : FileStream(descriptorPath, FileMode.Open, FileAccess.Read, ShareWithWriters, bufferSize: 0, options)
    {
        public override string Name => path;
    }
}

/// <summary>
/// One version of a file's content, as far as the system tells without reading it: length and last write time, and on
/// Linux the inode and the status-change time. The write time alone is not enough: `cp -p`, `rsync -t`, `touch -r` and
/// reproducible builds set it back, but nothing can set back the change time, and a file replaced by another (a
/// rename over it) has another inode.
/// </summary>
internal readonly record struct FileVersion(long Length, DateTime LastWriteUtc, long ChangeTicks, ulong Inode);

/// <summary>A shared file that changed while it was read whole (for its hash), other than by growing.</summary>
internal sealed class FileChangedException(string message) : IOException(message);

/// <summary>A shared name that leads to a pipe, socket or device rather than a file.</summary>
internal sealed class NotARegularFileException() : IOException("not a regular file (a pipe, socket or device)");

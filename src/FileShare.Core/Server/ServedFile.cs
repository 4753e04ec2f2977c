using Microsoft.Win32.SafeHandles;

namespace FileShare.Server;

/// <summary>
/// A shared file open for serving: the handle its bytes are read from, the version it had when first asked, and the
/// asynchronous stream that sendfile takes, made on first need (a body small enough to travel in its reply never
/// needs one).
/// </summary>
internal sealed class ServedFile : IDisposable
{
    private FileStream? _stream;
    private FileVersion? _version;

    public ServedFile(FileStream stream)
    {
        _stream = stream;
        Handle = stream.SafeFileHandle;
        FullPath = stream.Name;
    }

    public ServedFile(SafeFileHandle handle, string fullPath, FileVersion version)
    {
        Handle = handle;
        FullPath = fullPath;
        _version = version;
    }

    /// <summary>The full path it was opened by (the hash cache's key).</summary>
    public string FullPath { get; }

    public SafeFileHandle Handle { get; }

    public FileVersion Version => _version ??= ShareFile.VersionOf(Handle);

    public FileStream StreamForSendfile() => _stream ??= ShareFile.ReopenForSendfile(Handle, FullPath);

    public void Dispose()
    {
        _stream?.Dispose();
        Handle.Dispose();
    }
}

using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

internal static class LocalFile
{
    /// <summary>Writes received bytes; a local failure (disk full, I/O error) is reported as such, not as a network fault.</summary>
    public static void Write(SafeFileHandle target, ReadOnlySpan<byte> data, long offset, string remotePath, string endpoint)
    {
        try
        {
            RandomAccess.Write(target, data, offset);
        }
        catch (IOException e)
        {
            throw new FileShareException(FileShareErrorKind.LocalWriteFailed, $"Could not write '{remotePath}' from {endpoint} to the local disk: {e.Message}", endpoint, remotePath, e);
        }
    }

    /// <summary>Waits out a write that may still be using a buffer, ignoring its outcome: the caller is already failing.</summary>
    public static async ValueTask SettleAsync(ValueTask write)
    {
        try
        {
            await write.ConfigureAwait(false);
        }
        catch
        {
            // Already reported, or superseded by the error being thrown.
        }
    }
}

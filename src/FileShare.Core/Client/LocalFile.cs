using System.Runtime.CompilerServices;
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

    /// <summary>
    /// Starts the write of received bytes (the pwrite runs on a pool thread) and meanwhile feeds them to
    /// <paramref name="verifier"/> on the caller's thread, so the receive loop's two stages are about even on a busy
    /// machine: reading and hashing on one thread, copying into the page cache on another. The returned task
    /// completes once the write has let go of the buffer.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public static async ValueTask WriteAsync(SafeFileHandle target, ReadOnlyMemory<byte> data, long offset, PieceVerifier? verifier, string remotePath, string endpoint)
    {
        try
        {
            ValueTask write = RandomAccess.WriteAsync(target, data, offset);
            try
            {
                verifier?.Append(data.Span);
            }
            catch
            {
                await SettleAsync(write).ConfigureAwait(false);
                throw;
            }

            await write.ConfigureAwait(false);
            verifier?.ReportWritten();
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

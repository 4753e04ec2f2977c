using System.Buffers;
using System.Runtime.CompilerServices;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// Takes the bytes a read reply promised off the connection and writes them to a file, each read within the read
/// timeout; a connection closed before the last byte is an incomplete transfer.
/// </summary>
internal sealed class RangeReceiver(string endpoint, FileShareClientOptions options)
{
    // Bodies up to this size are written in one synchronous call once they are all in.
    private const int SmallBody = 64 * 1024;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReceiveAsync(FrameChannel channel, string path, long count, SafeFileHandle target, long targetOffset, TransferProgress? progress, PieceVerifier? verifier, CancellationTokenSource deadline)
    {
        // Two buffers: the disk write of one overlaps the network read into the other. A small body needs one, of its size.
        bool small = count <= SmallBody;
        byte[] receiving = ArrayPool<byte>.Shared.Rent(small ? (int)Math.Max(count, 1) : options.ReceiveBufferSize);
        byte[] writing = small ? [] : ArrayPool<byte>.Shared.Rent(options.ReceiveBufferSize);
        ValueTask pendingWrite = default;
        try
        {
            if (small)
            {
                await ReceiveSmallAsync(channel, path, target, targetOffset, progress, verifier, receiving.AsMemory(0, (int)count), deadline).ConfigureAwait(false);
                return;
            }

            long remaining = count;
            while (remaining > 0)
            {
                // The buffer is filled before it is handed on: BLAKE3 hashes a 4 MiB span (a whole piece, in one call)
                // two to five times as fast as the 16-64 KiB a single receive brings, and each hand-off to the pool
                // costs a wake-up.
                int chunk = (int)Math.Min(remaining, receiving.Length);
                await FillAsync(channel, receiving.AsMemory(0, chunk), path, count - remaining, count, progress, deadline).ConfigureAwait(false);

                await TakePending(ref pendingWrite).ConfigureAwait(false);
                pendingWrite = LocalFile.WriteAsync(target, receiving.AsMemory(0, chunk), targetOffset, verifier, path, endpoint);
                (receiving, writing) = (writing, receiving);
                targetOffset += chunk;
                remaining -= chunk;
            }

            await TakePending(ref pendingWrite).ConfigureAwait(false);
        }
        finally
        {
            await LocalFile.SettleAsync(TakePending(ref pendingWrite)).ConfigureAwait(false);
            ArrayPool<byte>.Shared.Return(receiving);
            if (writing.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(writing);
            }
        }
    }

    /// <summary>
    /// Takes a whole small body, then writes and hashes it here in one call: handing a write of a few KiB to the
    /// thread pool, as the overlapped loop does, costs more than the write itself.
    /// </summary>
    private async Task ReceiveSmallAsync(FrameChannel channel, string path, SafeFileHandle target, long targetOffset, TransferProgress? progress, PieceVerifier? verifier, Memory<byte> body, CancellationTokenSource deadline)
    {
        await FillAsync(channel, body, path, 0, body.Length, progress, deadline).ConfigureAwait(false);
        LocalFile.Write(target, body.Span, targetOffset, path, endpoint);
        verifier?.Append(body.Span);
    }

    /// <summary>The next <c>buffer.Length</c> bytes of a promised body, of which <paramref name="received"/> came before.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FillAsync(FrameChannel channel, Memory<byte> buffer, string path, long received, long promised, TransferProgress? progress, CancellationTokenSource deadline)
    {
        for (int filled = 0; filled < buffer.Length;)
        {
            int read = await ReadBodyAsync(channel, buffer[filled..], path, received + filled, promised, deadline).ConfigureAwait(false);
            filled += read;
            progress?.Add(read);
        }
    }

    /// <summary>Some bytes of a promised body, each read within the read timeout; a connection closed early is an incomplete transfer.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadBodyAsync(FrameChannel channel, Memory<byte> buffer, string path, long received, long promised, CancellationTokenSource deadline)
    {
        deadline.CancelAfter(options.ReadTimeout);
        int read = await channel.ReadRawAsync(buffer, deadline.Token).ConfigureAwait(false);
        if (read == 0)
        {
            throw new FileShareException(FileShareErrorKind.IncompleteTransfer,
                $"{endpoint} closed the connection after {received:N0} of {promised:N0} bytes of '{path}'.", endpoint, path);
        }

        return read;
    }

    /// <summary>Hands over a pending write and forgets it, so it is awaited exactly once (pooled ValueTasks allow no more).</summary>
    private static ValueTask TakePending(ref ValueTask pending)
    {
        ValueTask taken = pending;
        pending = default;
        return taken;
    }
}

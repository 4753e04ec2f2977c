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
    // Bodies up to this size are received whole into one buffer of their size.
    private const int SmallBody = 64 * 1024;

    public ValueTask ReceiveAsync(FrameChannel channel, string path, long count, SafeFileHandle target, long targetOffset, TransferProgress? progress, PieceVerifier? verifier, CancellationTokenSource deadline) =>
        count <= SmallBody || !options.OverlapWrites
            ? ReceiveInPlaceAsync(channel, path, count, target, targetOffset, progress, verifier, deadline)
            : ReceiveOverlappedAsync(channel, path, count, target, targetOffset, progress, verifier, deadline);

    /// <summary>
    /// Receives into one buffer, writing and hashing each fill here before the next: for a small body, handing a write
    /// of a few KiB to the thread pool costs more than the write itself; with many downloads at once, the others keep
    /// the disk and the CPU busy meanwhile.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveInPlaceAsync(FrameChannel channel, string path, long count, SafeFileHandle target, long targetOffset, TransferProgress? progress, PieceVerifier? verifier, CancellationTokenSource deadline)
    {
        int size = (int)Math.Clamp(count, 1, count <= SmallBody ? SmallBody : options.ReceiveBufferSize);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            for (long received = 0; received < count;)
            {
                Memory<byte> fill = buffer.AsMemory(0, (int)Math.Min(count - received, size));
                await FillAsync(channel, fill, path, received, count, progress, deadline).ConfigureAwait(false);
                LocalFile.Write(target, fill.Span, targetOffset + received, path, endpoint);
                verifier?.Append(fill.Span);
                verifier?.ReportWritten();
                received += fill.Length;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Receives into two buffers in turn: the disk write of one overlaps the network read into the other.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveOverlappedAsync(FrameChannel channel, string path, long count, SafeFileHandle target, long targetOffset, TransferProgress? progress, PieceVerifier? verifier, CancellationTokenSource deadline)
    {
        // From a fast local server the whole body may keep arriving as fast as it is taken, so every receive and write
        // completes at once: without a yield the caller's call would run the whole transfer before it returned, and a
        // caller starting many (200 receives of 4 GiB in the harness's host-growth shape) would get them one at a time.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        byte[] receiving = ArrayPool<byte>.Shared.Rent(options.ReceiveBufferSize);
        byte[] writing = ArrayPool<byte>.Shared.Rent(options.ReceiveBufferSize);
        ValueTask pendingWrite = default;
        try
        {
            for (long received = 0; received < count;)
            {
                // The buffer is filled before it is handed on: BLAKE3 hashes a 4 MiB span (a whole piece, in one call)
                // two to five times as fast as the 16-64 KiB a single receive brings, and each hand-off to the pool
                // costs a wake-up.
                Memory<byte> fill = receiving.AsMemory(0, (int)Math.Min(count - received, receiving.Length));
                await FillAsync(channel, fill, path, received, count, progress, deadline).ConfigureAwait(false);

                await TakePending(ref pendingWrite).ConfigureAwait(false);
                pendingWrite = LocalFile.WriteAsync(target, fill, targetOffset + received, verifier, path, endpoint);
                (receiving, writing) = (writing, receiving);
                received += fill.Length;
            }

            await TakePending(ref pendingWrite).ConfigureAwait(false);
        }
        finally
        {
            await LocalFile.SettleAsync(TakePending(ref pendingWrite)).ConfigureAwait(false);
            ArrayPool<byte>.Shared.Return(receiving);
            ArrayPool<byte>.Shared.Return(writing);
        }
    }

    /// <summary>The next <c>buffer.Length</c> bytes of a promised body, of which <paramref name="received"/> came before.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FillAsync(FrameChannel channel, Memory<byte> buffer, string path, long received, long promised, TransferProgress? progress, CancellationTokenSource deadline)
    {
        TransferRateLimit? limit = options.RateLimit;
        for (int filled = 0; filled < buffer.Length;)
        {
            int read = limit is null
                ? await ReadBodyAsync(channel, buffer[filled..], path, received + filled, promised, deadline).ConfigureAwait(false)
                : await ReadWithinLimitAsync(limit, channel, buffer[filled..], path, received + filled, promised, deadline).ConfigureAwait(false);
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

    /// <summary>Waits until the cap allows some bytes, then reads no more than those.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadWithinLimitAsync(TransferRateLimit limit, FrameChannel channel, Memory<byte> buffer, string path, long received, long promised, CancellationTokenSource deadline)
    {
        int granted = await limit.ReserveBeforeReadAsync(buffer.Length, deadline).ConfigureAwait(false);
        int read = 0;
        try
        {
            read = await ReadBodyAsync(channel, buffer[..granted], path, received, promised, deadline).ConfigureAwait(false);
            return read;
        }
        finally
        {
            limit.Unused(granted - read);
        }
    }

    /// <summary>Hands over a pending write and forgets it, so it is awaited exactly once (pooled ValueTasks allow no more).</summary>
    private static ValueTask TakePending(ref ValueTask pending)
    {
        ValueTask taken = pending;
        pending = default;
        return taken;
    }
}

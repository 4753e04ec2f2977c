using System.Buffers;
using System.Net.Sockets;

namespace FileShare.Server;

/// <summary>
/// Sends a byte range of a file to a connection. On a plain socket it hands the range to the kernel
/// (<see cref="Socket.SendPacketsAsync"/> with a file element is sendfile(2) on Linux, TransmitPackets on Windows),
/// so file bytes never pass through managed buffers; on any other stream it copies through one pooled buffer.
/// </summary>
internal sealed class RangeSender : IDisposable
{
    // Small enough that the stall timeout measures progress, large enough that per-call overhead vanishes.
    private const int KernelChunk = 4 * 1024 * 1024;
    private const int CopyBuffer = 256 * 1024;

    private readonly Socket? _socket;
    private readonly Stream _stream;
    private readonly TimeSpan _stallTimeout;
    private SocketAsyncEventArgs? _args;
    private readonly SendPacketsElement[] _elements = new SendPacketsElement[1];

    public RangeSender(Socket? socket, Stream stream, TimeSpan stallTimeout)
    {
        _socket = socket;
        _stream = stream;
        _stallTimeout = stallTimeout;
    }

    public async Task SendAsync(FileStream file, long offset, long count, Action<long> sent, CancellationToken cancellationToken)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_socket is not null)
        {
            await SendWithKernelAsync(file, offset, count, sent, stall).ConfigureAwait(false);
        }
        else
        {
            await SendWithCopyAsync(file, offset, count, sent, stall).ConfigureAwait(false);
        }
    }

    private async Task SendWithKernelAsync(FileStream file, long offset, long count, Action<long> sent, CancellationTokenSource stall)
    {
        Socket socket = _socket!;
        using CancellationTokenRegistration abort = stall.Token.UnsafeRegister(static s => ((Socket)s!).Dispose(), socket);
        while (count > 0)
        {
            int chunk = (int)Math.Min(count, KernelChunk);
            stall.CancelAfter(_stallTimeout);
            _elements[0] = new SendPacketsElement(file, offset, chunk, endOfPacket: false);
            (SocketError error, long transferred) = await SendPacketsAsync(socket).ConfigureAwait(false);
            stall.Token.ThrowIfCancellationRequested();
            if (error != SocketError.Success)
            {
                throw new SocketException((int)error);
            }

            if (transferred != chunk)
            {
                throw new IOException($"The file ended {chunk - transferred} bytes early while it was being sent.");
            }

            sent(chunk);
            offset += chunk;
            count -= chunk;
        }
    }

    private async Task SendWithCopyAsync(FileStream file, long offset, long count, Action<long> sent, CancellationTokenSource stall)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBuffer);
        try
        {
            while (count > 0)
            {
                int read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, (int)Math.Min(count, buffer.Length)), offset, stall.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException($"The file ended {count} bytes early while it was being sent.");
                }

                stall.CancelAfter(_stallTimeout);
                await _stream.WriteAsync(buffer.AsMemory(0, read), stall.Token).ConfigureAwait(false);
                sent(read);
                offset += read;
                count -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private Task<(SocketError, long)> SendPacketsAsync(Socket socket)
    {
        if (_args is null)
        {
            _args = new SocketAsyncEventArgs();
            _args.Completed += static (_, e) => ((TaskCompletionSource<(SocketError, long)>)e.UserToken!).TrySetResult((e.SocketError, e.BytesTransferred));
        }

        var completion = new TaskCompletionSource<(SocketError, long)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _args.UserToken = completion;
        _args.SendPacketsElements = _elements;
        if (!socket.SendPacketsAsync(_args))
        {
            completion.TrySetResult((_args.SocketError, _args.BytesTransferred));
        }

        return completion.Task;
    }

    public void Dispose() => _args?.Dispose();
}

using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// Fetches one named file from a server of the original program: send the bare name, read "ok" and then bytes
/// until the server closes, or "-1e" (not found) / "-2e" (server error). The protocol carries no length, so a
/// transfer cut short cannot be told from a complete one; FileShare's own protocol has no such gap.
/// </summary>
public static class SeedClient
{
    private const int MaxName = 1024;

    public static async Task<long> DownloadAsync(string host, int port, string name, SafeFileHandle target, FileShareClientOptions options, TransferProgress? progress, CancellationToken cancellationToken)
    {
        string endpoint = Endpoint.Format(host, port);
        if (options.AccessKey is not null || options.UsesTls)
        {
            throw new FileShareException(options.AccessKey is not null ? FileShareErrorKind.AuthenticationFailed : FileShareErrorKind.TlsFailed,
                $"The original protocol has neither access keys nor TLS, so '{name}' is not fetched from {endpoint} with it.", endpoint, name);
        }

        byte[] request = Encoding.UTF8.GetBytes(name);
        if (request.Length > MaxName)
        {
            throw new FileShareException(FileShareErrorKind.InvalidPath, $"'{name}' is longer than the {MaxName} bytes the original protocol allows.", endpoint, name);
        }

        using Socket socket = await Endpoint.ConnectAsync(host, port, options, cancellationToken).ConfigureAwait(false);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(options.ReceiveBufferSize);
        try
        {
            deadline.CancelAfter(options.ReadTimeout);
            await stream.WriteAsync(request, deadline.Token).ConfigureAwait(false);
            int status = 0;
            while (status < 2)
            {
                int read = await stream.ReadAsync(buffer.AsMemory(status, 2 - status), deadline.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                status += read;
            }

            ReadOnlySpan<byte> answer = buffer.AsSpan(0, status);
            if (!answer.SequenceEqual("ok"u8))
            {
                (FileShareErrorKind kind, string what) = answer.StartsWith("-1"u8) ? (FileShareErrorKind.NotFound, "not found")
                    : answer.StartsWith("-2"u8) ? (FileShareErrorKind.ServerError, "server error; a FileShare server answers so when it is busy or needs an access key or TLS, which -Protocol Auto or FileShare would tell apart")
                    : (FileShareErrorKind.ProtocolError, "unexpected answer");
                throw new FileShareException(kind, $"'{name}' on {endpoint}: {what} (original protocol).", endpoint, name);
            }

            long total = 0;
            TransferRateLimit? limit = options.RateLimit;
            while (true)
            {
                int granted = limit is null ? buffer.Length : await limit.ReserveBeforeReadAsync(buffer.Length, deadline).ConfigureAwait(false);
                deadline.CancelAfter(options.ReadTimeout);
                int read = await stream.ReadAsync(buffer.AsMemory(0, granted), deadline.Token).ConfigureAwait(false);
                limit?.Unused(granted - read);
                if (read == 0)
                {
                    return total;
                }

                LocalFile.Write(target, buffer.AsSpan(0, read), total, name, endpoint);
                total += read;
                progress?.Add(read);
            }
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new FileShareException(FileShareErrorKind.Timeout, $"No data for '{name}' from {endpoint} within {options.ReadTimeout.TotalSeconds:0.#} s.", endpoint, name, e);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            throw new FileShareException(FileShareErrorKind.ConnectionFailed, $"Connection to {endpoint} failed while fetching '{name}': {e.Message}", endpoint, name, e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

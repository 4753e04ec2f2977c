using System.Net;
using System.Net.Sockets;

namespace FileShare.Client;

internal static class Endpoint
{
    public static string Format(string host, int port) =>
        IPAddress.TryParse(host, out IPAddress? address) && address.AddressFamily == AddressFamily.InterNetworkV6
            ? $"[{host}]:{port}"
            : $"{host}:{port}";

    /// <summary>Connects within the options' timeout; failures become a FileShareException naming host:port.</summary>
    public static async Task<Socket> ConnectAsync(string host, int port, FileShareClientOptions options, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(host, port, deadline.Token).ConfigureAwait(false);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new FileShareException(FileShareErrorKind.Timeout, $"Could not connect to {Format(host, port)} within {options.ConnectTimeout.TotalSeconds:0.#} s.", Format(host, port)) { NotReached = true };
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new FileShareException(FileShareErrorKind.ConnectionFailed, $"Could not connect to {Format(host, port)}: {e.Message}", Format(host, port), inner: e) { NotReached = true };
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

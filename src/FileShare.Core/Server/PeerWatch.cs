using System.Net.Sockets;

namespace FileShare.Server;

/// <summary>
/// Ends a long wait (a first hash of a large file) when the client closes its connection meanwhile. Nothing reads the
/// socket during such a wait, so without this a client that gave up (Ctrl+C) would keep its connection, and a place
/// under the server's connection limits, until the hash was done: minutes for a large file.
/// </summary>
internal static class PeerWatch
{
    /// <summary>The result of <paramref name="work"/>, unless <paramref name="peer"/> closes before it is done.</summary>
    /// <exception cref="ClientLeftException">The client closed or reset the connection first.</exception>
    public static async Task<T> UnlessPeerLeavesAsync<T>(this Task<T> work, Socket peer)
    {
        if (work.IsCompleted)
        {
            return await work.ConfigureAwait(false);
        }

        Task<bool> left;
        using (var watching = new CancellationTokenSource())
        {
            left = LeftAsync(peer, watching.Token);
            if (await Task.WhenAny(work, left).ConfigureAwait(false) != left)
            {
                watching.Cancel();
            }

            // Ended before the connection is read again, so the watch never races the next request's read.
            if (await left.ConfigureAwait(false))
            {
                throw new ClientLeftException();
            }
        }

        return await work.ConfigureAwait(false);
    }

    private static async Task<bool> LeftAsync(Socket peer, CancellationToken cancellationToken)
    {
        try
        {
            // A zero-byte receive ends when anything arrives and takes nothing: a request sent behind this one (the read
            // that follows a hash) stays in the socket for the session. It can also end with nothing to say, so the end
            // of the stream is told only by a socket that polls readable with no byte to read; a few such wake-ups in
            // a row end the watch rather than spin.
            for (int wakeUps = 0; wakeUps < 3; wakeUps++)
            {
                await peer.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (peer.Available > 0)
                {
                    return false;
                }

                if (peer.Poll(0, SelectMode.SelectRead) && peer.Available == 0)
                {
                    return true;
                }
            }

            return false;
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && e is OperationCanceledException or SocketException)
        {
            // Called off because the answer was ready; the runtime may report that as an aborted operation.
            return false;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }
}

/// <summary>The client closed its connection while the server was still working on its request.</summary>
internal sealed class ClientLeftException() : Exception("The client closed the connection before its answer was ready.");

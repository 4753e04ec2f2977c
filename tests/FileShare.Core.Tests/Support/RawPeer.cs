using System.Net;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Tests.Support;

/// <summary>
/// A hand-driven client for tests that must misbehave: it sends any bytes, frames of any type and body, as fast or
/// as slowly as the test likes, and reads whatever the server answers.
/// </summary>
public sealed class RawPeer : IDisposable
{
    private RawPeer(Socket socket)
    {
        Socket = socket;
        Stream = new NetworkStream(socket, ownsSocket: true);
        Channel = new FrameChannel(Stream);
    }

    public Socket Socket { get; }

    public NetworkStream Stream { get; }

    public FrameChannel Channel { get; }

    /// <summary>Takes over a connected socket.</summary>
    public static RawPeer Wrap(Socket socket) => new(socket);

    /// <summary>Connects to a server on loopback; with <paramref name="receiveBuffer"/> set, the socket's window stays that small.</summary>
    public static async Task<RawPeer> ConnectAsync(int port, int? receiveBuffer = null, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (receiveBuffer is { } size)
        {
            socket.ReceiveBufferSize = size;
        }

        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        return new RawPeer(socket);
    }

    /// <summary>Connects and completes the FileShare hello, asserting the server said OK.</summary>
    public static async Task<RawPeer> HandshakeAsync(int port, int? receiveBuffer = null, CancellationToken cancellationToken = default)
    {
        RawPeer peer = await ConnectAsync(port, receiveBuffer, cancellationToken);
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, 0);
        await peer.Stream.WriteAsync(hello, cancellationToken);
        await peer.Stream.ReadExactlyAsync(hello, cancellationToken);
        (_, ushort status, _) = Messages.ReadHello(hello);
        Assert.Equal(StatusCode.Ok, (StatusCode)status);
        return peer;
    }

    /// <summary>The bytes of a whole frame: header and body.</summary>
    public static byte[] Frame(FrameType type, uint requestId, ReadOnlySpan<byte> body)
    {
        byte[] frame = new byte[ProtocolConstants.FrameHeaderLength + body.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        frame[4] = (byte)type;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), requestId);
        body.CopyTo(frame.AsSpan(ProtocolConstants.FrameHeaderLength));
        return frame;
    }

    /// <summary>The body of a request that names one path (stat, hash), or a read request when a range is given.</summary>
    public static byte[] PathBody(string path, (long Offset, long Length)? range = null)
    {
        byte[] body = new byte[SpanWriter.StringSize(path) + (range is null ? 0 : 16)];
        var writer = new SpanWriter(body);
        if (range is { } r)
        {
            Messages.WriteReadRequest(ref writer, path, r.Offset, r.Length);
        }
        else
        {
            Messages.WritePathRequest(ref writer, path);
        }

        return body;
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default) => Stream.WriteAsync(bytes, cancellationToken);

    /// <summary>
    /// The next frame with a body of its own (it outlives the next read), or null when the server closed; fails the
    /// test if nothing comes within <paramref name="timeout"/>.
    /// </summary>
    public async Task<Frame?> ReadFrameAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        Frame? frame = await Channel.ReadFrameAsync(deadline.Token);
        return frame is { } f ? f with { Body = f.Body.ToArray() } : null;
    }

    /// <summary>Reads and discards until the server closes the connection (or resets it); returns the bytes read.</summary>
    public async Task<long> DrainUntilClosedAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        byte[] buffer = new byte[64 * 1024];
        long total = 0;
        try
        {
            int read;
            while ((read = await Stream.ReadAsync(buffer, deadline.Token)) > 0)
            {
                total += read;
            }
        }
        catch (IOException)
        {
            // A reset is a close too.
        }

        return total;
    }

    public void Dispose()
    {
        Channel.Dispose();
        Stream.Dispose();
    }
}

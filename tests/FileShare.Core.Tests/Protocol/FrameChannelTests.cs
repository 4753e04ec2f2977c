using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FileShare.Protocol;

namespace FileShare.Tests.Protocol;

public sealed class FrameChannelTests
{
    [Fact]
    public async Task Frames_round_trip_with_type_request_id_and_body()
    {
        var wire = new MemoryStream();
        using (var sender = new FrameChannel(wire))
        {
            await SendAsync(sender, FrameType.StatRequest, 7, "first"u8.ToArray());
            await SendAsync(sender, FrameType.ReadReply, uint.MaxValue, []);
        }

        wire.Position = 0;
        using var receiver = new FrameChannel(wire);
        Frame first = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.Equal((FrameType.StatRequest, 7u, "first"), (first.Type, first.RequestId, System.Text.Encoding.UTF8.GetString(first.Body.Span)));
        Frame second = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.Equal((FrameType.ReadReply, uint.MaxValue, 0), (second.Type, second.RequestId, second.Body.Length));
        Assert.Null(await receiver.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task The_header_is_big_endian_length_then_type_then_request_id()
    {
        var wire = new MemoryStream();
        using var sender = new FrameChannel(wire);
        await SendAsync(sender, FrameType.ListRequest, 0x01020304, [9, 9]);

        Assert.Equal(new byte[] { 0, 0, 0, 2, 0x10, 1, 2, 3, 4, 9, 9 }, wire.ToArray());
    }

    [Fact]
    public async Task A_body_larger_than_the_initial_buffer_arrives_whole()
    {
        byte[] body = new byte[300_000];
        Random.Shared.NextBytes(body);
        var wire = new MemoryStream();
        using var sender = new FrameChannel(wire);
        await SendAsync(sender, FrameType.ListReply, 1, body);

        wire.Position = 0;
        using var receiver = new FrameChannel(wire);
        Frame frame = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.True(frame.Body.Span.SequenceEqual(body));
    }

    [Fact]
    public async Task A_frame_delivered_one_byte_at_a_time_is_reassembled()
    {
        var wire = new MemoryStream();
        using (var sender = new FrameChannel(wire))
        {
            await SendAsync(sender, FrameType.ReadRequest, 42, "slow"u8.ToArray());
        }

        using var receiver = new FrameChannel(new OneByteStream(wire.ToArray()));
        Frame frame = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.Equal((FrameType.ReadRequest, 42u), (frame.Type, frame.RequestId));
        Assert.True(frame.Body.Span.SequenceEqual("slow"u8));
    }

    [Fact]
    public async Task A_frame_declaring_more_than_the_maximum_is_refused_before_its_body_is_read()
    {
        byte[] header = new byte[ProtocolConstants.FrameHeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(header, 17);
        using var receiver = new FrameChannel(new MemoryStream(header), maxBody: 16);

        await Assert.ThrowsAsync<ProtocolException>(async () => await receiver.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_frame_of_exactly_the_maximum_is_accepted()
    {
        var wire = new MemoryStream();
        using (var sender = new FrameChannel(wire, maxBody: 16))
        {
            await SendAsync(sender, FrameType.ListReply, 1, new byte[16]);
        }

        wire.Position = 0;
        using var receiver = new FrameChannel(wire, maxBody: 16);
        Assert.Equal(16, (await receiver.ReadFrameAsync(CancellationToken.None))!.Value.Body.Length);
    }

    [Fact]
    public void Beginning_a_frame_larger_than_the_maximum_throws()
    {
        using var sender = new FrameChannel(new MemoryStream(), maxBody: 16);
        Assert.Throws<ProtocolException>(() => sender.BeginFrame(17));
    }

    [Fact]
    public async Task An_oversized_frame_from_a_socket_peer_is_refused()
    {
        (Socket left, Socket right) = await SocketPairAsync();
        using (left)
        using (right)
        {
            byte[] header = new byte[ProtocolConstants.FrameHeaderLength];
            BinaryPrimitives.WriteUInt32BigEndian(header, ProtocolConstants.MaxFrameBody + 1);
            await left.SendAsync(header);
            using var receiver = new FrameChannel(new NetworkStream(right));

            await Assert.ThrowsAsync<ProtocolException>(async () => await receiver.ReadFrameAsync(CancellationToken.None));
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(ProtocolConstants.FrameHeaderLength + 2)]
    public async Task A_stream_that_ends_inside_a_frame_throws_rather_than_returning_a_short_frame(int cutAt)
    {
        var wire = new MemoryStream();
        using (var sender = new FrameChannel(wire))
        {
            await SendAsync(sender, FrameType.StatRequest, 1, "abcdef"u8.ToArray());
        }

        using var receiver = new FrameChannel(new MemoryStream(wire.ToArray()[..cutAt]));
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await receiver.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_held_frame_a_frame_and_raw_bytes_go_out_in_one_write_and_read_ahead_cuts_them_apart()
    {
        (Socket left, Socket right) = await SocketPairAsync();
        using var leftStream = new NetworkStream(left, ownsSocket: true);
        using var rightStream = new NetworkStream(right, ownsSocket: true);
        var counting = new WriteCountingStream(leftStream);
        using var sender = new FrameChannel(counting);
        SpanWriter writer = sender.BeginFrame(5);
        writer.WriteBytes("first"u8);
        sender.HoldFrame(FrameType.HashReply, 1, writer.Position);
        writer = sender.BeginFrame(6 + 4);
        writer.WriteBytes("second"u8);
        "data"u8.CopyTo(sender.AfterBody(writer.Position, 4));
        await sender.SendFrameAsync(FrameType.ReadReply, 2, writer.Position, CancellationToken.None, trailing: 4);

        using var receiver = new FrameChannel(rightStream, readAhead: true);
        Frame first = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.Equal((FrameType.HashReply, 1u, "first"), (first.Type, first.RequestId, System.Text.Encoding.UTF8.GetString(first.Body.Span)));
        Assert.Equal(FrameType.ReadReply, receiver.NextFrameReadAhead);
        Frame second = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.Equal((FrameType.ReadReply, 2u, "second"), (second.Type, second.RequestId, System.Text.Encoding.UTF8.GetString(second.Body.Span)));
        Assert.Null(receiver.NextFrameReadAhead);
        byte[] raw = new byte[4];
        int taken = 0;
        while (taken < raw.Length)
        {
            taken += await receiver.ReadRawAsync(raw.AsMemory(taken), CancellationToken.None);
        }

        Assert.Equal("data"u8.ToArray(), raw);
        Assert.Equal(1, counting.Writes);
        Assert.False(receiver.HasReadAhead);
    }

    [Fact]
    public async Task With_read_ahead_a_frame_delivered_one_byte_at_a_time_is_reassembled_and_a_cut_frame_throws()
    {
        var wire = new MemoryStream();
        using (var sender = new FrameChannel(wire))
        {
            await SendAsync(sender, FrameType.ReadRequest, 42, "slow"u8.ToArray());
            await SendAsync(sender, FrameType.StatRequest, 43, "cut short"u8.ToArray());
        }

        using var receiver = new FrameChannel(new OneByteStream(wire.ToArray()[..^2]), readAhead: true);
        Frame frame = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.Equal((FrameType.ReadRequest, 42u), (frame.Type, frame.RequestId));
        Assert.True(frame.Body.Span.SequenceEqual("slow"u8));
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await receiver.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task With_read_ahead_a_body_larger_than_the_buffer_arrives_whole_after_a_small_frame()
    {
        byte[] body = new byte[300_000];
        Random.Shared.NextBytes(body);
        var wire = new MemoryStream();
        using (var sender = new FrameChannel(wire))
        {
            await SendAsync(sender, FrameType.StatRequest, 1, [1, 2, 3]);
            await SendAsync(sender, FrameType.ListReply, 2, body);
        }

        wire.Position = 0;
        using var receiver = new FrameChannel(wire, readAhead: true);
        Assert.Equal(3, (await receiver.ReadFrameAsync(CancellationToken.None))!.Value.Body.Length);
        Frame frame = (await receiver.ReadFrameAsync(CancellationToken.None))!.Value;
        Assert.True(frame.Body.Span.SequenceEqual(body));
        Assert.Null(await receiver.ReadFrameAsync(CancellationToken.None));
    }

    private static ValueTask SendAsync(FrameChannel channel, FrameType type, uint requestId, byte[] body)
    {
        SpanWriter writer = channel.BeginFrame(body.Length);
        writer.WriteBytes(body);
        return channel.SendFrameAsync(type, requestId, writer.Position, CancellationToken.None);
    }

    private static async Task<(Socket, Socket)> SocketPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var left = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await left.ConnectAsync(listener.LocalEndPoint!);
        return (left, await listener.AcceptAsync());
    }

    /// <summary>Counts the writes that reach the stream below, so a test can tell one write from several.</summary>
    private sealed class WriteCountingStream(Stream inner) : Stream
    {
        public int Writes { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes++;
            return inner.WriteAsync(buffer, cancellationToken);
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            Writes++;
            inner.Write(buffer, offset, count);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>Hands out at most one byte per read, as a slow network may.</summary>
    private sealed class OneByteStream(byte[] data) : MemoryStream(data)
    {
        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(1, buffer.Length)]);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(1, buffer.Length)], cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(1, count));
    }
}

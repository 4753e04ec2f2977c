using CsCheck;
using FileShare.Protocol;
using FileShare.Tests.Support;

namespace FileShare.Tests.Fuzz;

/// <summary>
/// Every decoder, fed random and mutated input, either decodes or refuses with a <see cref="ProtocolException"/>
/// (or, for a stream that ends mid-frame, <see cref="EndOfStreamException"/>): nothing else ever escapes.
/// </summary>
public sealed class DecoderFuzzTests
{
    private const long Iterations = 20_000;

    [Fact]
    public void Every_message_reader_decodes_or_refuses_with_a_protocol_error()
    {
        WireGen.Body.Sample(body =>
        {
            foreach (Action<byte[]> read in Readers)
            {
                try
                {
                    read(body);
                }
                catch (ProtocolException)
                {
                }
            }
        }, iter: Iterations);
    }

    [Fact]
    public void The_hello_reader_accepts_only_the_magic()
    {
        Gen.Byte.Array[ProtocolConstants.HelloLength, ProtocolConstants.HelloLength].Sample(hello =>
        {
            bool magic = Messages.StartsWithMagic(hello);
            try
            {
                Messages.ReadHello(hello);
                Assert.True(magic);
            }
            catch (ProtocolException)
            {
                Assert.False(magic);
            }
        }, iter: Iterations);
    }

    [Fact]
    public async Task The_frame_reader_refuses_cleanly_and_never_allocates_past_the_frame_limit()
    {
        // Each stream holds a few frames; a lying length must be refused before a buffer is sized for it.
        // One thread, and a memory stream that completes every read at once, so the allocation count is this frame's.
        await WireGen.Frame.Array[1, 4].SampleAsync(async frames =>
        {
            using var stream = new MemoryStream([.. frames.SelectMany(f => f)]);
            using var channel = new FrameChannel(stream);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                while (await channel.ReadFrameAsync(CancellationToken.None) is { } frame)
                {
                    Assert.True(frame.Body.Length <= ProtocolConstants.MaxFrameBody);
                }
            }
            catch (Exception e) when (e is ProtocolException or EndOfStreamException)
            {
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 2 * ProtocolConstants.MaxFrameBody, $"reading {frames.Length} frame(s) allocated {allocated:N0} bytes");
        }, iter: Iterations, threads: 1);
    }

    private static readonly Action<byte[]>[] Readers =
    [
        body => Messages.ReadListRequest(body),
        body => Messages.ReadPathRequest(body),
        body => Messages.ReadReadRequest(body),
        body => Messages.ReadListReply(body, [], out _, out _),
        body => Messages.ReadStatReply(body, out _, out _),
        body => Messages.ReadReadReply(body, out _, out _),
        body => Messages.ReadHashReply(body, out _, out _),
        body =>
        {
            var reader = new SpanReader(body);
            Messages.ReadStatus(ref reader, out _);
            reader.ReadUtcTime();
            reader.ReadString();
            Messages.ReadEntry(ref reader);
        },
    ];
}

using FileShare.Protocol;

namespace FileShare.Tests.Protocol;

public sealed class SpanWriterTests
{
    [Fact]
    public void Integers_are_written_big_endian()
    {
        byte[] buffer = new byte[15];
        var writer = new SpanWriter(buffer);
        writer.WriteByte(0xAB);
        writer.WriteUInt16(0x0102);
        writer.WriteUInt32(0x03040506);
        writer.WriteInt64(0x0708090A0B0C0D0E);

        Assert.Equal(15, writer.Position);
        Assert.Equal(new byte[] { 0xAB, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 }, buffer);
    }

    [Fact]
    public void A_string_is_its_utf8_length_then_its_utf8_bytes()
    {
        const string text = "é/ü";
        byte[] buffer = new byte[SpanWriter.StringSize(text)];
        var writer = new SpanWriter(buffer);
        writer.WriteString(text);

        Assert.Equal(new byte[] { 0, 0, 0, 5, 0xC3, 0xA9, (byte)'/', 0xC3, 0xBC }, buffer);
        Assert.Equal(0, writer.Remaining);
    }

    [Fact]
    public void Writing_past_the_buffer_throws_instead_of_overrunning()
    {
        byte[] buffer = new byte[5];
        Assert.Throws<ProtocolException>(() =>
        {
            var writer = new SpanWriter(buffer.AsSpan(0, 4));
            writer.WriteUInt16(1);
            writer.WriteUInt32(2);
        });
        Assert.Equal(0, buffer[4]);
    }

    [Fact]
    public void A_string_that_does_not_fit_throws()
    {
        Assert.Throws<ProtocolException>(() =>
        {
            var writer = new SpanWriter(new byte[SpanWriter.StringSize("abc") - 1]);
            writer.WriteString("abc");
        });
    }
}

using FileShare.Protocol;

namespace FileShare.Tests.Protocol;

public sealed class SpanReaderTests
{
    [Fact]
    public void Reads_back_what_the_writer_wrote_including_extreme_values()
    {
        byte[] buffer = new byte[1 + 2 + 4 + 8 + 8 + SpanWriter.StringSize("naïve ✓ 日本")];
        var writer = new SpanWriter(buffer);
        writer.WriteByte(byte.MaxValue);
        writer.WriteUInt16(ushort.MaxValue);
        writer.WriteUInt32(uint.MaxValue);
        writer.WriteInt64(long.MinValue);
        writer.WriteInt64(-1);
        writer.WriteString("naïve ✓ 日本");

        var reader = new SpanReader(buffer);
        Assert.Equal(byte.MaxValue, reader.ReadByte());
        Assert.Equal(ushort.MaxValue, reader.ReadUInt16());
        Assert.Equal(uint.MaxValue, reader.ReadUInt32());
        Assert.Equal(long.MinValue, reader.ReadInt64());
        Assert.Equal(-1, reader.ReadInt64());
        Assert.Equal("naïve ✓ 日本", reader.ReadString());
        reader.EnsureEnd();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void An_integer_cut_short_throws(int size)
    {
        byte[] body = new byte[size - 1];
        Assert.Throws<ProtocolException>(() =>
        {
            var reader = new SpanReader(body);
            _ = size switch
            {
                1 => reader.ReadByte(),
                2 => reader.ReadUInt16(),
                4 => reader.ReadUInt32(),
                _ => reader.ReadInt64(),
            };
        });
    }

    [Fact]
    public void A_string_with_fewer_bytes_than_its_length_throws()
    {
        byte[] body = [0, 0, 0, 10, (byte)'a', (byte)'b', (byte)'c'];
        Assert.Throws<ProtocolException>(() => new SpanReader(body).ReadString());
    }

    [Fact]
    public void A_string_longer_than_the_limit_throws_before_its_bytes_are_read()
    {
        byte[] body = [0, 0, 0, 9, .. "123456789"u8];
        Assert.Equal("123456789", new SpanReader(body).ReadString(maxBytes: 9));
        Assert.Throws<ProtocolException>(() => new SpanReader(body).ReadString(maxBytes: 8));
    }

    [Fact]
    public void A_huge_declared_string_length_throws_without_allocating_it()
    {
        byte[] body = [0xFF, 0xFF, 0xFF, 0xFF];
        Assert.Throws<ProtocolException>(() => new SpanReader(body).ReadString());
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xC0, 0x80 })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    [InlineData(new byte[] { (byte)'a', 0xE2, 0x82 })]
    public void Invalid_utf8_throws(byte[] text)
    {
        byte[] body = [0, 0, 0, (byte)text.Length, .. text];
        Assert.Throws<ProtocolException>(() => new SpanReader(body).ReadString());
    }

    [Fact]
    public void Trailing_bytes_are_refused()
    {
        byte[] body = [0, 1, 2];
        Assert.Throws<ProtocolException>(() =>
        {
            var reader = new SpanReader(body);
            reader.ReadUInt16();
            reader.EnsureEnd();
        });
    }
}

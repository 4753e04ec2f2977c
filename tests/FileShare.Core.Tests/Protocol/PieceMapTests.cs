using FileShare.Protocol;

namespace FileShare.Tests.Protocol;

public sealed class PieceMapTests
{
    [Fact]
    public void The_wire_layout_is_one_bit_per_piece_least_significant_first()
    {
        var map = new PieceMap(10);
        map.Set(0);
        map.Set(3);
        map.Set(9);

        Assert.Equal([0b0000_1001, 0b0000_0010], map.ToBytes());
        PieceMap back = PieceMap.FromBytes(map.ToBytes(), 10);
        Assert.Equal([0, 3, 9], Enumerable.Range(0, 10).Where(back.Has));
        Assert.Equal(3, back.HeldCount);
        Assert.False(back.IsComplete);
    }

    [Fact]
    public void A_map_of_the_wrong_size_is_refused() =>
        Assert.Throws<ProtocolException>(() => PieceMap.FromBytes(new byte[3], 10));

    [Theory]
    [InlineData(0, 4, true)]
    [InlineData(3, 2, false)]
    [InlineData(8, 4, true)]
    [InlineData(12, 1, false)]
    [InlineData(5, 0, true)]
    public void A_range_is_held_only_when_every_piece_it_touches_is(long offset, long length, bool held)
    {
        var map = new PieceMap(3);
        map.Set(0);
        map.Set(2);

        Assert.Equal(held, map.HoldsRange(offset, length, pieceSize: 4));
    }

    [Fact]
    public void Missing_pieces_are_described_as_byte_ranges_ending_at_the_file_end() =>
        Assert.Equal("0-3, 8-15, 20-21", PieceMap.DescribeRanges([5, 0, 2, 3], length: 22, pieceSize: 4));
}

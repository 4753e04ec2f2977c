using FileShare.Protocol;
using FileShare.Tests.Support;

namespace FileShare.Tests;

public sealed class PartialFileTests
{
    [Fact]
    public void The_partial_file_is_a_hidden_sibling_of_the_destination()
    {
        string destination = Path.Join(Path.GetTempPath(), "folder", "naïve file.bin");

        string partial = PartialFile.PathFor(destination);

        Assert.Equal(Path.Join(Path.GetTempPath(), "folder", ".naïve file.bin.partial"), partial);
        Assert.True(PartialFile.IsPartialName(Path.GetFileName(partial)));
    }

    [Theory]
    [InlineData(236, false)]
    [InlineData(237, true)]
    [InlineData(255, true)]
    public void A_name_too_long_for_its_partial_file_gets_a_shortened_one_whose_record_still_fits(int nameBytes, bool shortened)
    {
        // Three-byte characters where they can be, so a shortening must not cut one in half.
        string name = new string('\u4E2D', nameBytes / 3) + new string('a', nameBytes % 3);
        string destination = Path.Join(Path.GetTempPath(), name);

        string partialName = Path.GetFileName(PartialFile.PathFor(destination));

        Assert.True(System.Text.Encoding.UTF8.GetByteCount(partialName + ".state.tmp") <= 255, partialName);
        Assert.True(PartialFile.IsPartialName(partialName));
        Assert.True(PartialFile.IsPartialName(partialName + ".state"));
        Assert.Equal(shortened ? null : name, PartialFile.FinalNameOf(partialName));
        Assert.DoesNotContain('\uFFFD', partialName);
        Assert.NotEqual(partialName, Path.GetFileName(PartialFile.PathFor(destination + "b")));
    }

    [Theory]
    [InlineData(".a.partial", true)]
    [InlineData(".naïve file.bin.partial", true)]
    [InlineData(".partial", false)]
    [InlineData("..partial", false)]
    [InlineData("a.partial", false)]
    [InlineData(".a.partial.txt", false)]
    [InlineData(".a.PARTIAL", false)]
    [InlineData(".a.partial.state", true)]
    [InlineData(".a.partial.state.tmp", true)]
    [InlineData("a.partial.state", false)]
    [InlineData(".a.state", false)]
    public void Only_names_the_downloader_creates_count_as_partial(string name, bool partial)
    {
        Assert.Equal(partial, PartialFile.IsPartialName(name));
    }

    [Fact]
    public void A_state_record_survives_a_round_trip_and_a_torn_one_reads_as_none()
    {
        using var temp = new TempDirectory();
        string path = Path.Join(temp.Path, ".x.bin.partial.state");
        byte[] pieces = new byte[3 * ProtocolConstants.Sha256Length];
        Random.Shared.NextBytes(pieces);
        var held = new PieceMap(3);
        held.Set(1);
        var digest = new FileDigest((2L * ProtocolConstants.PieceSize) + 5, new DateTime(2026, 11, 26, 0, 0, 0, DateTimeKind.Utc), new byte[32], ProtocolConstants.PieceSize, pieces, PieceHashAlgorithm.Blake3);

        new PartialState("sub/x.bin", ["a:5000", "[::1]:5001"], digest, held).Write(path);
        PartialState back = PartialState.TryRead(path)!;

        Assert.Equal("sub/x.bin", back.RemotePath);
        Assert.Equal(PieceHashAlgorithm.Blake3, back.Digest.PieceAlgorithm);
        Assert.Equal(["a:5000", "[::1]:5001"], back.Sources);
        Assert.True(back.Describes(digest));
        Assert.Equal([false, true, false], Enumerable.Range(0, 3).Select(back.Held.Has));
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..40]);
        Assert.Null(PartialState.TryRead(path));
    }

    [Fact]
    public void A_link_planted_under_the_record_s_temporary_name_is_not_written_through()
    {
        using var temp = new TempDirectory();
        string path = Path.Join(temp.Path, ".x.bin.partial.state");
        string victim = Path.Join(temp.Path, "victim.txt");
        File.WriteAllText(victim, "not a record");
        File.CreateSymbolicLink(path + ".tmp", victim);
        var digest = new FileDigest(5, DateTime.UtcNow, new byte[32], ProtocolConstants.PieceSize, new byte[32], PieceHashAlgorithm.Blake3);

        new PartialState("x.bin", ["a:5000"], digest, new PieceMap(1)).Write(path);

        Assert.Equal("not a record", File.ReadAllText(victim));
        Assert.Equal("x.bin", PartialState.TryRead(path)!.RemotePath);
        Assert.Null(new FileInfo(path).LinkTarget);
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void A_record_from_before_piece_algorithms_were_named_reads_as_SHA256_pieces()
    {
        using var temp = new TempDirectory();
        string path = Path.Join(temp.Path, ".x.bin.partial.state");
        byte[] pieces = new byte[2 * ProtocolConstants.Sha256Length];
        Random.Shared.NextBytes(pieces);
        var digest = new FileDigest(ProtocolConstants.PieceSize + 1L, new DateTime(2026, 11, 1, 0, 0, 0, DateTimeKind.Utc), new byte[32], ProtocolConstants.PieceSize, pieces);
        byte[] record = new byte[4 + 2 + SpanWriter.StringSize("x.bin") + 2 + SpanWriter.StringSize("a:5000") + Messages.DigestSize(digest, namesAlgorithm: false) + 1];
        var writer = new SpanWriter(record);
        writer.WriteBytes("FSPS"u8);
        writer.WriteUInt16(1);
        writer.WriteString("x.bin");
        writer.WriteUInt16(1);
        writer.WriteString("a:5000");
        Messages.WriteDigest(ref writer, digest, namesAlgorithm: false);
        writer.WriteByte(0b10);
        File.WriteAllBytes(path, record);

        PartialState back = PartialState.TryRead(path)!;

        Assert.Equal(PieceHashAlgorithm.Sha256, back.Digest.PieceAlgorithm);
        Assert.True(back.Describes(digest));
        Assert.True(back.Held.Has(1));
        Assert.False(back.Held.Has(0));
        Assert.True(back.Describes(digest with { PieceHashes = new byte[pieces.Length], PieceAlgorithm = PieceHashAlgorithm.Blake3 }));
        Assert.False(back.Describes(digest with { PieceHashes = new byte[pieces.Length] }));
    }
}

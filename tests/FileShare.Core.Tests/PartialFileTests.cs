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
    [InlineData(".a.partial", true)]
    [InlineData(".naïve file.bin.partial", true)]
    [InlineData(".partial", false)]
    [InlineData("..partial", false)]
    [InlineData("a.partial", false)]
    [InlineData(".a.partial.txt", false)]
    [InlineData(".a.PARTIAL", false)]
    public void Only_names_the_downloader_creates_count_as_partial(string name, bool partial)
    {
        Assert.Equal(partial, PartialFile.IsPartialName(name));
    }
}

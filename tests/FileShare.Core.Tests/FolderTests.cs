using FileShare.Tests.Support;

namespace FileShare.Tests;

public sealed class FolderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void A_file_in_the_folders_place_is_named_as_a_file()
    {
        string file = Path.Join(_temp.Path, "report.txt");
        File.WriteAllText(file, "kept");

        IOException error = Assert.Throws<IOException>(() => Folder.Create(file));

        Assert.Equal($"'{file}' is a file, not a folder.", error.Message);
        Assert.Equal("kept", File.ReadAllText(file));
    }

    [Fact]
    public void A_file_in_place_of_a_parent_is_named_with_the_folder_it_blocks()
    {
        string file = Path.Join(_temp.Path, "sub");
        File.WriteAllText(file, "kept");
        string folder = Path.Join(file, "deeper", "deepest");

        IOException error = Assert.Throws<IOException>(() => Folder.Create(folder));

        Assert.Equal($"'{file}' is a file, so it cannot hold the folder '{folder}'.", error.Message);
    }

    [Fact]
    public void Folders_are_made_with_their_parents()
    {
        string folder = Path.Join(_temp.Path, "a", "b", "c");

        Folder.Create(folder);
        Folder.Create(folder);

        Assert.True(Directory.Exists(folder));
    }
}

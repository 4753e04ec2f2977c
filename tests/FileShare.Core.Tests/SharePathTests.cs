using FileShare.Tests.Support;

namespace FileShare.Tests;

public sealed class SharePathTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _root;
    private readonly string _outside;

    public SharePathTests()
    {
        _root = _temp.Create("root");
        _outside = _temp.Create("outside");
        File.WriteAllText(Path.Join(_outside, "secret.txt"), "secret");
        File.WriteAllText(Path.Join(_root, "inside.txt"), "inside");
        Directory.CreateDirectory(Path.Join(_root, "sub"));
    }

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("..")]
    [InlineData("../x")]
    [InlineData("a/..")]
    [InlineData("a/../b")]
    [InlineData("a/b/../../..")]
    [InlineData("/")]
    [InlineData("/etc/passwd")]
    [InlineData("C:x")]
    [InlineData("c:/windows")]
    [InlineData("a\\b")]
    [InlineData("..\\x")]
    [InlineData("a\0b")]
    [InlineData("\0")]
    [InlineData("a\nb")]
    [InlineData("a\tb")]
    [InlineData("a\u001Fb")]
    [InlineData("a\u007Fb")]
    [InlineData("c1\u009B31mred")]
    [InlineData("invoice\u202Efdp.exe")]
    [InlineData("a\u2066b")]
    [InlineData("a//b")]
    [InlineData("//a")]
    [InlineData("a//")]
    [InlineData(".")]
    [InlineData("./a")]
    [InlineData("a/./b")]
    [InlineData("a/.")]
    public void A_name_that_breaks_the_rule_is_refused_with_a_reason(string name)
    {
        Assert.False(SharePath.TrySplit(name, out string[] segments, out string? reason));
        Assert.Empty(segments);
        Assert.False(string.IsNullOrWhiteSpace(reason));
        Assert.False(SharePath.TryResolve(_root, name, out _, out _));
    }

    [Theory]
    [InlineData("", new string[0])]
    [InlineData("a", new[] { "a" })]
    [InlineData("a/b.txt", new[] { "a", "b.txt" })]
    [InlineData("folder/", new[] { "folder" })]
    [InlineData("...", new[] { "..." })]
    [InlineData("..a/b..", new[] { "..a", "b.." })]
    [InlineData(".hidden", new[] { ".hidden" })]
    [InlineData("naïve file ✓/日本語 1.bin", new[] { "naïve file ✓", "日本語 1.bin" })]
    public void A_name_that_follows_the_rule_splits_into_its_segments(string name, string[] expected)
    {
        Assert.True(SharePath.TrySplit(name, out string[] segments, out string? reason), reason);
        Assert.Equal(expected, segments);
    }

    [Fact]
    public void A_plain_name_resolves_under_the_root()
    {
        Assert.True(SharePath.TryResolve(_root, "sub/new.txt", out string full, out _));
        Assert.Equal(Path.Join(_root, "sub", "new.txt"), full);
    }

    [Fact]
    public void A_symlinked_file_pointing_outside_is_refused()
    {
        File.CreateSymbolicLink(Path.Join(_root, "leak.txt"), Path.Join(_outside, "secret.txt"));

        Assert.False(SharePath.TryResolve(_root, "leak.txt", out _, out string? reason));
        Assert.Contains("outside", reason);
    }

    [Fact]
    public void A_symlinked_folder_pointing_outside_is_refused_for_everything_beneath_it()
    {
        Directory.CreateSymbolicLink(Path.Join(_root, "sub", "escape"), _outside);

        Assert.False(SharePath.TryResolve(_root, "sub/escape", out _, out _));
        Assert.False(SharePath.TryResolve(_root, "sub/escape/secret.txt", out _, out _));
    }

    [Fact]
    public void A_relative_symlink_climbing_out_of_the_root_is_refused()
    {
        File.CreateSymbolicLink(Path.Join(_root, "sub", "up.txt"), "../../outside/secret.txt");

        Assert.False(SharePath.TryResolve(_root, "sub/up.txt", out _, out _));
    }

    [Fact]
    public void A_chain_of_links_that_ends_outside_is_refused()
    {
        File.CreateSymbolicLink(Path.Join(_root, "hop2.txt"), Path.Join(_outside, "secret.txt"));
        File.CreateSymbolicLink(Path.Join(_root, "hop1.txt"), Path.Join(_root, "hop2.txt"));

        Assert.False(SharePath.TryResolve(_root, "hop1.txt", out _, out _));
    }

    [Fact]
    public void A_symlinked_file_pointing_inside_resolves_to_its_target()
    {
        File.CreateSymbolicLink(Path.Join(_root, "sub", "alias.txt"), Path.Join(_root, "inside.txt"));

        Assert.True(SharePath.TryResolve(_root, "sub/alias.txt", out string full, out string? reason), reason);
        Assert.Equal(Path.Join(_root, "inside.txt"), full);
    }

    [Fact]
    public void A_symlinked_folder_pointing_inside_is_followed()
    {
        File.WriteAllText(Path.Join(_root, "sub", "x.txt"), "x");
        Directory.CreateSymbolicLink(Path.Join(_root, "shortcut"), "sub");

        Assert.True(SharePath.TryResolve(_root, "shortcut/x.txt", out string full, out string? reason), reason);
        Assert.Equal(Path.Join(_root, "sub", "x.txt"), full);
    }

    [Fact]
    public void A_root_reached_through_a_symlink_still_confines_by_its_real_path()
    {
        string linkToRoot = Path.Join(_temp.Path, "root-link");
        Directory.CreateSymbolicLink(linkToRoot, _root);
        string realRoot = SharePath.RealRoot(linkToRoot);

        Assert.Equal(_root, realRoot);
        File.CreateSymbolicLink(Path.Join(_root, "alias.txt"), Path.Join(linkToRoot, "inside.txt"));
        Assert.True(SharePath.TryResolve(realRoot, "alias.txt", out string full, out _));
        Assert.Equal(Path.Join(_root, "inside.txt"), full);
    }

    [Fact]
    public void A_sibling_folder_sharing_the_roots_name_as_a_prefix_is_outside()
    {
        Assert.True(SharePath.IsInside(_root, Path.Join(_root, "a")));
        Assert.True(SharePath.IsInside(_root, _root));
        Assert.False(SharePath.IsInside(_root, _root + "-evil" + Path.DirectorySeparatorChar + "a"));
        Assert.False(SharePath.IsInside(_root, Path.GetDirectoryName(_root)!));
    }

    [Fact]
    public void A_symlink_to_a_sibling_folder_sharing_the_roots_prefix_is_refused()
    {
        string sibling = Directory.CreateDirectory(_root + "2").FullName;
        File.WriteAllText(Path.Join(sibling, "x.txt"), "x");
        File.CreateSymbolicLink(Path.Join(_root, "x.txt"), Path.Join(sibling, "x.txt"));

        Assert.False(SharePath.TryResolve(_root, "x.txt", out _, out _));
    }

    [Theory]
    [InlineData("sub/file.txt")]
    [InlineData("file.txt")]
    [InlineData("naïve ✓/a b.txt")]
    public void A_destination_for_a_good_name_lands_inside_the_folder(string name)
    {
        string full = SharePath.ResolveDestination(_root, name);

        Assert.Equal(Path.Join([_root, .. name.Split('/')]), full);
    }

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("../x")]
    [InlineData("sub/../../x")]
    [InlineData("/etc/cron.d/x")]
    [InlineData("C:x")]
    [InlineData("a\\..\\..\\x")]
    [InlineData("a\0")]
    public void A_destination_name_that_would_escape_or_is_malformed_is_refused(string name)
    {
        var error = Assert.Throws<FileShareException>(() => SharePath.ResolveDestination(_root, name));

        Assert.Equal(FileShareErrorKind.InvalidPath, error.Kind);
        Assert.Equal(name, error.RemotePath);
    }
}

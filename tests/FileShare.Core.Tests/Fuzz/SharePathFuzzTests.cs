using CsCheck;
using FileShare.Tests.Support;

namespace FileShare.Tests.Fuzz;

/// <summary>Random names, heavy in dots, separators and look-alikes, never get past the path rules or out of the root.</summary>
public sealed class SharePathFuzzTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _root;

    public SharePathFuzzTests()
    {
        _root = _temp.Create("root");
        Directory.CreateDirectory(Path.Join(_root, "a", "b"));
        File.WriteAllText(Path.Join(_root, "a", "file"), "x");
    }

    public void Dispose() => _temp.Dispose();

    /// <summary>Short names from a hostile alphabet, plus names stitched from tricky segments, so '..' and friends come up often.</summary>
    private static readonly Gen<string> HostileName = Gen.OneOf(
        WireGen.Name,
        Gen.OneOf(Gen.Const(".."), Gen.Const("."), Gen.Const(""), Gen.Const("a"), Gen.Const("b"), Gen.Const("..."), Gen.Const(". ."),
                Gen.Const("%2e%2e"), Gen.Const("C:"), Gen.Const("\\"), Gen.Const("\0"), Gen.Const("\uFF0E\uFF0E"), Gen.Const("file"))
            .Array[1, 6]
            .Select(Gen.OneOf(Gen.Const("/"), Gen.Const("\\"), Gen.Const("//")), (parts, separator) => string.Join(separator, parts)));

    [Fact]
    public void An_accepted_name_has_only_plain_segments_and_resolves_inside_the_root()
    {
        HostileName.Sample(name =>
        {
            if (!SharePath.TrySplit(name, out string[] segments, out string? reason))
            {
                Assert.False(string.IsNullOrEmpty(reason));
                return;
            }

            Assert.False(name.StartsWith('/'));
            Assert.All(segments, segment =>
            {
                Assert.NotEqual("", segment);
                Assert.NotEqual(".", segment);
                Assert.NotEqual("..", segment);
                Assert.DoesNotContain('/', segment);
                Assert.DoesNotContain('\\', segment);
                Assert.DoesNotContain(segment, c => char.IsControl(c) || SharePath.IsBidiControl(c));
            });
            Assert.True(SharePath.TryResolve(_root, name, out string fullPath, out _));
            Assert.True(SharePath.IsInside(_root, Path.GetFullPath(fullPath)), $"'{name}' resolved to '{fullPath}'");
        }, iter: 20_000);
    }

    [Fact]
    public void A_destination_is_inside_the_folder_or_refused_as_an_invalid_path()
    {
        HostileName.Sample(name =>
        {
            try
            {
                string destination = SharePath.ResolveDestination(_root, name);
                Assert.True(SharePath.IsInside(_root, destination) && destination != Path.TrimEndingDirectorySeparator(_root), $"'{name}' -> '{destination}'");
            }
            catch (FileShareException e)
            {
                Assert.Equal(FileShareErrorKind.InvalidPath, e.Kind);
            }
        }, iter: 20_000);
    }
}

using System.Security.Cryptography;

namespace FileShare.PowerShell.Tests.Support;

public static class TestFiles
{
    /// <summary>Writes <paramref name="length"/> pseudo-random bytes to <paramref name="root"/>/<paramref name="relative"/> ('/'-separated).</summary>
    public static string Write(string root, string relative, int length, int seed = 0)
    {
        string path = Path.Join([root, .. relative.Split('/')]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] content = new byte[length];
        new Random(seed == 0 ? relative.GetHashCode() : seed).NextBytes(content);
        File.WriteAllBytes(path, content);
        return path;
    }

    /// <summary>A file of <paramref name="length"/> zero bytes that takes no disk space until read into a copy.</summary>
    public static string Sparse(string root, string name, long length)
    {
        string path = Path.Join(root, name);
        using FileStream stream = File.Create(path);
        stream.SetLength(length);
        return path;
    }

    public static string Sha256(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    /// <summary>Every file under <paramref name="root"/> as '/'-separated relative names, sorted.</summary>
    public static string[] List(string root) =>
        Directory.EnumerateFiles(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)
            .ToArray();

    /// <summary>Asserts that every file of <paramref name="expected"/> has a byte-identical copy under <paramref name="actual"/>, and nothing else is there.</summary>
    public static void AssertSameTree(string expected, string actual)
    {
        Assert.Equal(List(expected), List(actual));
        foreach (string name in List(expected))
        {
            Assert.True(Sha256(Path.Join(expected, name)) == Sha256(Path.Join(actual, name)), $"'{name}' differs from the original.");
        }
    }
}

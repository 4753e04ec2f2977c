using System.Security.Cryptography;

namespace FileShare.Tests.Support;

public static class TestFiles
{
    public const int MiB = 1024 * 1024;

    /// <summary>Writes <paramref name="length"/> random bytes (creating folders) and returns the file's SHA-256.</summary>
    public static string WriteRandom(string path, long length)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, System.IO.FileShare.None, bufferSize: 0);
        byte[] chunk = new byte[(int)Math.Min(length, MiB)];
        for (long left = length; left > 0; left -= chunk.Length)
        {
            Span<byte> part = chunk.AsSpan(0, (int)Math.Min(left, chunk.Length));
            Random.Shared.NextBytes(part);
            hash.AppendData(part);
            file.Write(part);
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    public static string Sha256(string path)
    {
        using FileStream file = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(file));
    }

    /// <summary>Every entry left in a folder, so a test can show a failed download left nothing behind.</summary>
    public static string[] Leftovers(string folder) =>
        Directory.Exists(folder) ? Directory.GetFileSystemEntries(folder, "*", SearchOption.AllDirectories) : [];

    /// <summary>Whether this process holds <paramref name="path"/> open (Linux: its descriptors in /proc/self/fd).</summary>
    public static bool IsOpenHere(string path) =>
        new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos().Any(fd => fd.LinkTarget == path);
}

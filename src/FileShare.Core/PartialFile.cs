using System.Security.Cryptography;
using System.Text;

namespace FileShare;

/// <summary>
/// Where a download lives until it is complete: a hidden file beside its destination, named after it, ending in
/// ".partial", with its state record (<see cref="PartialState"/>) beside it. Servers never list or serve these names
/// as such; a partial copy that has a state record is offered under the final name, for the pieces it holds.
/// </summary>
public static class PartialFile
{
    public const string Suffix = ".partial";

    // The longest file name most file systems take (NAME_MAX), counted in UTF-8 bytes (Windows counts UTF-16 units,
    // never more); ".<name>.partial.state.tmp" must fit in it.
    private const int MaxNameBytes = 255;
    private const int NameOverhead = 1 + 8 + 6 + 4;
    private const int ShortenedHashChars = 16;

    /// <summary>
    /// ".<name>.partial" beside the destination; for a name too long for that, its first bytes and a hash of the
    /// whole name, so a file whose own name just fits can still be downloaded.
    /// </summary>
    public static string PathFor(string destination)
    {
        string folder = Path.GetDirectoryName(destination)!;
        string name = Path.GetFileName(destination);
        if (Encoding.UTF8.GetByteCount(name) + NameOverhead <= MaxNameBytes)
        {
            return Path.Join(folder, "." + name + Suffix);
        }

        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(name)), 0, ShortenedHashChars / 2).ToLowerInvariant();
        return Path.Join(folder, "." + Utf8Prefix(name, MaxNameBytes - NameOverhead - 1 - ShortenedHashChars) + "~" + hash + Suffix);
    }

    /// <summary>
    /// The final name a partial file stands for ("a.bin" for ".a.bin.partial"), or null for any other name and for
    /// a shortened one (see <see cref="PathFor"/>), whose final name cannot be read back from it.
    /// </summary>
    public static string? FinalNameOf(string fileName) =>
        IsDataName(fileName) && !IsShortened(fileName) ? fileName[1..^Suffix.Length] : null;

    /// <summary>A partial file, its state record, or the record's temporary twin: names only downloads create.</summary>
    public static bool IsPartialName(string fileName) =>
        IsDataName(fileName)
        || (fileName.EndsWith(Suffix + PartialState.Suffix, StringComparison.Ordinal) && IsDataName(fileName[..^PartialState.Suffix.Length]))
        || (fileName.EndsWith(Suffix + PartialState.Suffix + ".tmp", StringComparison.Ordinal) && IsDataName(fileName[..^(PartialState.Suffix.Length + 4)]));

    /// <summary>A partial file's own name (not its record's), shortened or not.</summary>
    public static bool IsDataName(string fileName) =>
        fileName.Length > Suffix.Length + 1 && fileName[0] == '.' && fileName.EndsWith(Suffix, StringComparison.Ordinal);

    /// <summary>
    /// Whether a partial name was shortened: "~" and the hash right before ".partial", and within a character (at most
    /// 3 bytes short) of the longest partial name that leaves room for its record's.
    /// </summary>
    private static bool IsShortened(string fileName)
    {
        int longestDataName = MaxNameBytes - NameOverhead + 1 + Suffix.Length;
        int mark = fileName.Length - Suffix.Length - ShortenedHashChars - 1;
        return mark > 1 && fileName[mark] == '~' && !fileName.AsSpan(mark + 1, ShortenedHashChars).ContainsAnyExcept("0123456789abcdef")
            && Encoding.UTF8.GetByteCount(fileName) >= longestDataName - 3;
    }

    /// <summary>The longest start of <paramref name="name"/> within <paramref name="maxBytes"/> UTF-8 bytes, never splitting a character.</summary>
    private static string Utf8Prefix(string name, int maxBytes)
    {
        int bytes = 0, end = 0;
        foreach (Rune rune in name.EnumerateRunes())
        {
            if (bytes + rune.Utf8SequenceLength > maxBytes)
            {
                break;
            }

            bytes += rune.Utf8SequenceLength;
            end += rune.Utf16SequenceLength;
        }

        return name[..end];
    }

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the caller is already reporting the error that brought it here.
        }
    }

    /// <summary>Removes a partial file and its state record (best effort).</summary>
    public static void Discard(string partialPath)
    {
        TryDelete(PartialState.PathFor(partialPath));
        TryDelete(partialPath);
    }
}

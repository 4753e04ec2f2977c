using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace FileShare;

/// <summary>
/// The one rule for names that cross the wire, applied by the server to requests and by the client to names a
/// server sends back: '/'-separated segments, relative, no '..', no backslash, no drive letter, no control
/// characters (C0 and C1) and no bidirectional text controls. Resolution then keeps the result inside a root, following symlinks only where they stay inside.
/// </summary>
public static class SharePath
{
    /// <summary>Splits a wire name into segments, or returns why it is refused. An empty name is the root itself.</summary>
    public static bool TrySplit(string name, out string[] segments, out string? reason)
    {
        segments = [];
        reason = null;
        if (name.Length == 0)
        {
            return true;
        }

        foreach (char c in name)
        {
            if (char.IsControl(c))
            {
                reason = "control characters and NUL are not allowed in a path";
                return false;
            }

            if (IsBidiControl(c))
            {
                // Such a name displays its characters out of order, so "report\u202Efdp.exe" reads as "reportexe.pdf".
                reason = "bidirectional text controls (U+202A-U+202E, U+2066-U+2069) are not allowed in a path";
                return false;
            }

            if (c == '\\')
            {
                reason = "backslashes are not allowed in a path; use '/'";
                return false;
            }
        }

        if (name[0] == '/')
        {
            reason = "absolute paths are not allowed";
            return false;
        }

        if (name.Length >= 2 && name[1] == ':' && char.IsAsciiLetter(name[0]))
        {
            reason = "drive letters are not allowed";
            return false;
        }

        string[] parts = name.Split('/');
        int count = parts.Length;
        if (parts[^1].Length == 0)
        {
            count--;
        }

        for (int i = 0; i < count; i++)
        {
            string part = parts[i];
            if (part.Length == 0 || part == "." || part == "..")
            {
                reason = $"path segment '{part}' is not allowed";
                return false;
            }

            // Windows would read "a:b" as an alternate data stream and trims trailing dots and spaces.
            if (OperatingSystem.IsWindows() && (part.Contains(':') || part.EndsWith('.') || part.EndsWith(' ')))
            {
                reason = $"path segment '{part}' is not allowed on this platform";
                return false;
            }
        }

        segments = count == parts.Length ? parts : parts[..count];
        return true;
    }

    /// <summary>Whether <paramref name="text"/> holds a control character or a bidirectional text control: text that must not reach a terminal as it is.</summary>
    public static bool HasUnprintable(string text) => text.AsSpan().ContainsAny(Unprintable);

    private static readonly SearchValues<char> Unprintable =
        SearchValues.Create(Enumerable.Range(0, 0x2070).Select(c => (char)c).Where(c => char.IsControl(c) || IsBidiControl(c)).ToArray());

    /// <summary>
    /// The text with each control character written as \xHH and each bidirectional control as \uHHHH: names come from
    /// the other side (or a file list), and messages and logs are printed on consoles, where an escape sequence would
    /// act and an override would reorder what is shown.
    /// </summary>
    public static string Printable(string text)
    {
        if (!HasUnprintable(text))
        {
            return text;
        }

        var printable = new System.Text.StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            printable.Append(char.IsControl(c) ? $"\\x{(int)c:X2}" : IsBidiControl(c) ? $"\\u{(int)c:X4}" : c.ToString());
        }

        return printable.ToString();
    }

    /// <summary>An embedding, override or isolate: a character that reorders how the text around it is shown.</summary>
    public static bool IsBidiControl(char c) => c is (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069');

    /// <summary>
    /// Maps a wire name to a full path under <paramref name="root"/> (a full, link-free path), refusing names that
    /// break the rule and paths whose symlinks lead outside the root.
    /// </summary>
    public static bool TryResolve(string root, string name, out string fullPath, out string? reason)
    {
        fullPath = root;
        if (!TrySplit(name, out string[] segments, out reason))
        {
            return false;
        }

        string current = root;
        foreach (string segment in segments)
        {
            current = Path.Join(current, segment);
            FileSystemInfo info = new FileInfo(current);
            if (info.LinkTarget is null)
            {
                continue;
            }

            string? target = ResolveFinalTarget(info);
            if (target is null || !IsInside(root, target))
            {
                reason = "the path leads outside the shared folder";
                return false;
            }

            current = target;
        }

        fullPath = current;
        return true;
    }

    /// <summary>Full, normalised path of a local destination for a wire name, which must stay inside <paramref name="root"/>.</summary>
    public static string ResolveDestination(string root, string name)
    {
        if (!TrySplit(name, out string[] segments, out string? reason) || segments.Length == 0)
        {
            throw new FileShareException(FileShareErrorKind.InvalidPath, $"Refusing to write '{name}': {reason ?? "the name is empty"}.", path: name);
        }

        string full = Path.GetFullPath(Path.Join([root, .. segments]));
        if (!IsInside(root, full))
        {
            throw new FileShareException(FileShareErrorKind.InvalidPath, $"Refusing to write '{name}': it would land outside '{root}'.", path: name);
        }

        return full;
    }

    public static bool IsInside(string root, string candidate)
    {
        StringComparison comparison = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS()
            ? StringComparison.OrdinalIgnoreCase
            : StringComparison.Ordinal;
        string trimmedRoot = Path.TrimEndingDirectorySeparator(root);
        return candidate.Equals(trimmedRoot, comparison)
            || (candidate.StartsWith(trimmedRoot, comparison) && candidate.Length > trimmedRoot.Length
                && (candidate[trimmedRoot.Length] == Path.DirectorySeparatorChar || trimmedRoot.EndsWith(Path.DirectorySeparatorChar)));
    }

    /// <summary>
    /// Whether an opened file really lies beneath <paramref name="root"/>. The path was checked before the open, but a
    /// folder on it may have been swapped for a symlink in between; on Linux the kernel names the file a handle
    /// refers to (/proc/self/fd/N), which closes that race. Elsewhere the check before the open is all there is.
    /// </summary>
    public static bool IsOpenedInside(string root, SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux())
        {
            return true;
        }

        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            string? opened = new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget;
            return opened is not null && opened[0] == '/' && IsInside(root, opened);
        }
        catch (IOException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>The root as a full path with every symlink in it resolved, so later comparisons are between real paths.</summary>
    public static string RealRoot(string root)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        string? parent = Path.GetDirectoryName(full);
        string resolvedParent = parent is null ? full : RealRoot(parent);
        string joined = parent is null ? full : Path.Join(resolvedParent, Path.GetFileName(full));
        var info = new DirectoryInfo(joined);
        return info.LinkTarget is null ? joined : ResolveFinalTarget(info) ?? joined;
    }

    private static string? ResolveFinalTarget(FileSystemInfo link)
    {
        try
        {
            FileSystemInfo? target = link.ResolveLinkTarget(returnFinalTarget: true);
            if (target is null)
            {
                return null;
            }

            // The target's own parent folders may be links too; resolve them so the containment check is honest.
            return RealRoot(target.FullName);
        }
        catch (IOException)
        {
            return null;
        }
    }
}

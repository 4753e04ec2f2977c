using FileShare.Protocol;

namespace FileShare.PowerShell;

/// <summary>A file offered by one server. Its property names bind to Get-RemoteFile's parameters by name.</summary>
public sealed class RemoteFileInfo
{
    internal RemoteFileInfo(RemoteEntry entry, string computerName, int port)
    {
        Name = entry.Name;
        Length = entry.Length;
        LastWriteTimeUtc = entry.LastWriteTimeUtc;
        ComputerName = computerName;
        Port = port;
        Hash = entry.Sha256 is null ? null : Convert.ToHexString(entry.Sha256);
        if (entry.Pieces is { } pieces)
        {
            PiecesHeld = pieces.Held.HeldCount;
            PieceCount = pieces.Held.Count;
        }
    }

    /// <summary>'/'-separated path relative to the server's shared folder.</summary>
    public string Name { get; }

    public long Length { get; }

    /// <summary>Local time, as FileInfo.LastWriteTime, so it compares rightly with local files' times and Get-Date.</summary>
    public DateTime LastWriteTime => LastWriteTimeUtc.ToLocalTime();

    public DateTime LastWriteTimeUtc { get; }

    public string ComputerName { get; }

    public int Port { get; }

    /// <summary>SHA-256 in upper-case hex (as Get-FileHash shows it), when listed with -Hash.</summary>
    public string? Hash { get; }

    /// <summary>True for a partial copy (a download in progress or interrupted on that server): it holds only <see cref="PiecesHeld"/> pieces.</summary>
    public bool IsPartial => PieceCount is not null && PiecesHeld != PieceCount;

    /// <summary>Pieces (4 MiB each) of a partial copy the server holds; null for a whole file.</summary>
    public int? PiecesHeld { get; }

    /// <summary>Pieces in the whole file, for a partial copy; null for a whole file.</summary>
    public int? PieceCount { get; }

    public override string ToString() => Name;
}

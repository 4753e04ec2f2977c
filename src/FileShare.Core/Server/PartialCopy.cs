using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// A file the share holds only in part: the ".&lt;name&gt;.partial" of a download in progress (or interrupted, or
/// seeded with a range) whose state record says what it is a copy of. The server offers it under the final name
/// with the source's length, time and digest, and serves only the pieces the record says are verified.
/// </summary>
internal sealed record PartialCopy(string DataPath, PartialState State)
{
    /// <summary>The partial copy standing in for <paramref name="fullPath"/>, when no file of that name exists.</summary>
    public static PartialCopy? Find(string fullPath)
    {
        if (File.Exists(fullPath) || Directory.Exists(fullPath))
        {
            return null;
        }

        string data = PartialFile.PathFor(fullPath);
        var info = new FileInfo(data);

        // Downloads write plain files; a link under a partial name could lead anywhere.
        if (!info.Exists || info.LinkTarget is not null)
        {
            return null;
        }

        PartialState? state = PartialState.TryRead(PartialState.PathFor(data));
        return state is null ? null : new PartialCopy(data, state);
    }

    public FileDigest Digest => State.Digest;

    public RemoteEntry Entry(string name) =>
        new(name, Digest.Length, Digest.LastWriteTimeUtc, EntryKind.File, Digest.Sha256, new PieceAvailability(Digest.PieceSize, State.Held));
}

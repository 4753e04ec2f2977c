namespace FileShare.Protocol;

/// <summary>One file as a server describes it: a '/'-separated path relative to the share root.</summary>
public sealed record RemoteEntry(string Name, long Length, DateTime LastWriteTimeUtc, EntryKind Kind = EntryKind.File);

/// <summary>What the server promises before the raw bytes of a range follow its reply.</summary>
public readonly record struct RangeReply(long DataLength, long FileLength, DateTime LastWriteTimeUtc);

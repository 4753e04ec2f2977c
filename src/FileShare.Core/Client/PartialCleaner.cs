using FileShare.Protocol;

namespace FileShare.Client;

/// <summary>
/// Removes partial downloads nobody can finish: those whose recorded sources all answer that the file is gone or now
/// has other content, and state records whose partial file is gone. A partial file whose sources cannot be reached is
/// kept, since it may still be resumed once they are back. A partial-looking name without a state record (a download
/// killed outright leaves one, but so may another program's temporary file) goes only with <see cref="RemoveUnrecorded"/>.
/// </summary>
/// <param name="mayRemove">Asked before each removal with the partial file and why it would go (the PowerShell layer's -WhatIf and -Confirm).</param>
public sealed class PartialCleaner(ConnectionPool pool, Action<string> notice, Func<string, string, Task<bool>>? mayRemove = null)
{
    public bool RemoveUnrecorded { get; init; }

    /// <summary>Cleans <paramref name="root"/> and its subfolders; returns the partial files removed.</summary>
    public async Task<IReadOnlyList<string>> CleanAsync(string root, CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        if (!Directory.Exists(root))
        {
            return removed;
        }

        // Hidden names included (partial files are dot files); links skipped, to folders too: a link could lead the
        // walk outside the destination, or round a loop, and a linked file is not a partial file a download made.
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        foreach (string statePath in Directory.EnumerateFiles(root, "*" + PartialFile.Suffix + PartialState.Suffix, options))
        {
            string partial = statePath[..^PartialState.Suffix.Length];
            if (PartialFile.IsDataName(Path.GetFileName(partial)) && !File.Exists(partial)
                && (mayRemove is null || await mayRemove(statePath, "the partial file it describes is gone").ConfigureAwait(false)))
            {
                PartialFile.TryDelete(statePath);
            }
        }

        foreach (string partial in Directory.EnumerateFiles(root, "*" + PartialFile.Suffix, options).ToList())
        {
            if (!PartialFile.IsDataName(Path.GetFileName(partial)))
            {
                continue;
            }

            PartialState? state = PartialState.TryRead(PartialState.PathFor(partial));
            if (state is null && !RemoveUnrecorded)
            {
                notice($"Kept '{partial}': it has no readable state record, so it may not be a download's (another program's temporary file can have such a name); -Force removes it.");
                continue;
            }

            string? why = state is null ? "its state record is missing or unreadable, so it cannot be resumed" : await WhyStaleAsync(state, cancellationToken).ConfigureAwait(false);
            if (why is null || (mayRemove is not null && !await mayRemove(partial, why).ConfigureAwait(false)))
            {
                continue;
            }

            try
            {
                PartialHold? hold = PartialHold.TryTakeExisting(partial, partial);
                if (hold is null)
                {
                    continue;
                }

                hold.Discard();
            }
            catch (FileShareException e) when (e.Kind == FileShareErrorKind.DestinationInUse)
            {
                notice($"Kept '{partial}': a download is writing it.");
                continue;
            }
            catch (FileShareException e) when (e.Kind == FileShareErrorKind.LocalWriteFailed)
            {
                notice($"Kept '{partial}': it could not be held ({e.Message})");
                continue;
            }

            removed.Add(partial);
            notice($"Removed '{partial}': {why}.");
        }

        return removed;
    }

    /// <summary>Why the record's source content is gone, or null when some source still offers it or could not be asked.</summary>
    private async Task<string?> WhyStaleAsync(PartialState state, CancellationToken cancellationToken)
    {
        var answers = new List<string>();
        var unasked = new List<string>();
        foreach (string endpoint in state.Sources)
        {
            if (DownloadSource.TryParse(endpoint) is not { } source)
            {
                continue;
            }

            FileShareConnection? connection = null;
            try
            {
                (connection, _) = await pool.RentAsync(source.Host, source.Port, cancellationToken).ConfigureAwait(false);
                FileDigest digest = await connection.HashAsync(state.RemotePath, cancellationToken).ConfigureAwait(false);
                if (digest.Length == state.Digest.Length && digest.Sha256.AsSpan().SequenceEqual(state.Digest.Sha256))
                {
                    notice($"Kept the partial download of '{state.RemotePath}': {source.Endpoint} still offers the same content.");
                    return null;
                }

                answers.Add($"{source.Endpoint} now has other content (SHA-256 {digest.Sha256Hex})");
            }
            catch (FileShareException e) when (e.Kind is FileShareErrorKind.NotFound or FileShareErrorKind.NotAFile or FileShareErrorKind.PathRefused)
            {
                answers.Add($"{source.Endpoint} no longer has it");
            }
            catch (FileShareException e)
            {
                notice($"Could not ask {source.Endpoint} about '{state.RemotePath}': {e.Message}");
                unasked.Add(source.Endpoint);
            }
            finally
            {
                if (connection is not null)
                {
                    pool.Return(connection);
                }
            }
        }

        if (answers.Count == 0 || unasked.Count > 0)
        {
            // A source that could not be asked may still offer the content, and the file be resumed from it.
            notice($"Kept the partial download of '{state.RemotePath}': {(answers.Count == 0 ? "none of its sources" : "some of its sources")} ({string.Join(", ", answers.Count == 0 ? state.Sources : unasked)}) could not be asked.");
            return null;
        }

        return string.Join("; ", answers);
    }
}

using System.Diagnostics;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// Downloads whole files into a hidden ".partial" beside the destination and renames it into place only when
/// every piece has arrived and matched the servers' SHA-256 digest, so the destination never holds a half or
/// damaged file. Pieces come from every source that offers the same content (see <see cref="PieceDownload"/>).
/// An interrupted download keeps its partial file and a state record of the verified pieces, and the next one
/// continues from there if the source is still the same; damage or a changed source discards them.
/// </summary>
public sealed class FileDownloader(ConnectionPool pool)
{
    private const long SmallFile = 1024 * 1024;
    private string? _lastFolderMade;
    private SourceProber? _prober;

    public FileShareClientOptions Options => pool.Options;

    /// <summary>Check every piece against the server's SHA-256 digest (servers that cannot hash are trusted as before).</summary>
    public bool Verify { get; init; } = true;

    /// <summary>Leave an existing destination alone when its SHA-256 already equals the server's.</summary>
    public bool SkipIdentical { get; init; }

    /// <summary>
    /// Replace a destination that is read-only. Off, such a file is a <see cref="FileShareErrorKind.DestinationReadOnly"/>
    /// error before anything is downloaded, as Copy-Item refuses one without -Force: the rename into place would
    /// otherwise replace it without a word, whatever its mode says.
    /// </summary>
    public bool ReplaceReadOnly { get; init; }

    private SourceProber Prober => _prober ??= new SourceProber(pool, Verify);

    public Task<DownloadResult> DownloadAsync(string host, int port, string remotePath, string destinationPath, bool overwrite, TransferProgress? progress, CancellationToken cancellationToken) =>
        DownloadAsync(new DownloadRequest { RemotePath = remotePath, Destination = destinationPath, Sources = [new DownloadSource(host, port)], Overwrite = overwrite, Progress = progress }, cancellationToken);

    public async Task<DownloadResult> DownloadAsync(DownloadRequest request, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        DownloadSource primary = request.Sources[0];
        string remotePath = request.RemotePath;
        string destinationPath = request.Destination;
        EnsureFolder(Path.GetDirectoryName(destinationPath)!);
        if (!request.Overwrite && !SkipIdentical && File.Exists(destinationPath))
        {
            throw DestinationExists(destinationPath, primary.Endpoint, remotePath);
        }

        string partial = PartialFile.PathFor(destinationPath);
        FileShareConnection? ahead = request.TakeRequestsAhead();
        if (Options.Protocol == WireProtocol.Seed || pool.IsSeedServer(primary.Host, primary.Port))
        {
            ahead?.Dispose();
            return await FromSeedServerAsync(request, partial, started, cancellationToken).ConfigureAwait(false);
        }

        // Asked ahead or not, the answers decide as below: a destination that appeared meanwhile is still skipped or refused.
        List<SourceProbe> probes = ahead is not null || Prober.CanAskTogether(request, partial)
            ? [await Prober.ProbeAndOpenAsync(primary, remotePath, ahead, request.Next, cancellationToken).ConfigureAwait(false)]
            : await Prober.ProbeAsync(request, cancellationToken).ConfigureAwait(false);
        FileShareConnection? opened = probes[0].Opened;
        try
        {
            return await FromProbesAsync(request, probes, partial, started, () => Interlocked.Exchange(ref opened, null), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Unused: back to the pool when nothing is pending (an empty file), otherwise the pool closes it.
            if (opened is not null)
            {
                pool.Return(opened);
            }
        }
    }

    private async Task<DownloadResult> FromProbesAsync(DownloadRequest request, List<SourceProbe> probes, string partial, long started, Func<FileShareConnection?> takeOpened, CancellationToken cancellationToken)
    {
        string remotePath = request.RemotePath;
        string destinationPath = request.Destination;
        SourceProbe? reference = probes.FirstOrDefault(p => p.Error is null);
        if (reference is null)
        {
            SourceProbe first = probes[0];
            if (first.Error!.Kind == FileShareErrorKind.NotSupportedBySeedServer && Options.Protocol == WireProtocol.Auto)
            {
                pool.MarkSeedServer(first.Source.Host, first.Source.Port);
                return await FromSeedServerAsync(request, partial, started, cancellationToken).ConfigureAwait(false);
            }

            throw first.Error;
        }

        var group = new List<SourceProbe>();
        foreach (SourceProbe probe in probes)
        {
            if (probe.Error is not null)
            {
                request.SourceProblem?.Invoke(probe.Error);
            }
            else if (probe == reference || (reference.Digest is not null && probe.Digest is not null && probe.Digest.SameContentAs(reference.Digest)))
            {
                group.Add(probe);
            }
            else
            {
                request.SourceProblem?.Invoke(new FileShareException(FileShareErrorKind.DestinationConflict,
                    $"'{remotePath}' from {probe.Source.Endpoint} {(probe.Digest is null || reference.Digest is null ? "cannot be shown to have the same content" : "has different content")} than the copy from {reference.Source.Endpoint} being downloaded; fetch one of them into another -Destination.",
                    probe.Source.Endpoint, remotePath));
            }
        }

        FileDigest? digest = reference.Digest;
        // One stat for the checks below: whether the destination exists, and whether it is read-only.
        var existing = new FileInfo(destinationPath);
        if (digest is not null && existing.Exists)
        {
            if (SkipIdentical && await LocalCopy.IsIdenticalAsync(destinationPath, digest, cancellationToken).ConfigureAwait(false))
            {
                if (request.Overwrite)
                {
                    // -NoClobber leaves an existing file alone altogether.
                    LocalCopy.TakeWriteTime(destinationPath, digest.LastWriteTimeUtc, request.Notice);
                }

                return new DownloadResult(destinationPath, digest.Length, Stopwatch.GetElapsedTime(started), reference.Source.Endpoint, WireProtocol.FileShare, digest.Sha256Hex, Skipped: true);
            }

            if (!request.Overwrite)
            {
                throw DestinationExists(destinationPath, reference.Source.Endpoint, remotePath);
            }
        }

        RefuseReadOnly(existing, reference.Source.Endpoint, remotePath);

        if (digest is not null && reference.Opened is not null && reference.Range.FileLength > digest.Length)
        {
            // Grown since it was hashed (a log still being written): the whole file asked for is more than the digest
            // describes. That connection goes, with the bytes pending on it; the hashed bytes are asked for by range.
            takeOpened()?.Dispose();
        }

        TransferProgress progress = request.Progress ?? new TransferProgress();
        if (digest is null || digest.PieceCount == 0)
        {
            // Without piece hashes nothing can be resumed or split: one stream from one server, as before.
            if (File.Exists(partial))
            {
                request.Notice?.Invoke($"'{remotePath}' from {reference.Source.Endpoint} cannot resume: {(digest is null ? "the server offers no hashes" : digest.Length == 0 ? "the file is empty now" : "the file is too large for piece hashes")}; starting over.");
            }

            // The whole file already asked for (an empty file has no pieces) is the one stream: not asked for twice.
            (FileShareConnection, RangeReply)? asked = reference.Opened is not null && takeOpened() is { } opened ? (opened, reference.Range) : null;
            return await WholeFileAsync(reference.Source, remotePath, destinationPath, partial, request.Overwrite, digest, progress, started, asked, cancellationToken).ConfigureAwait(false);
        }

        (digest, bool checkWhole) = ForSeveralSources(group, digest);
        return await PiecesAsync(request, group, digest, checkWhole, partial, progress, started, reference.Opened is null ? null : (takeOpened(), reference.Range), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The digest every source's pieces are checked against. A sole source's may be XXH3-128; several sources need
    /// pieces no one of them can forge, so another source's BLAKE3 digest is taken (partial copies recorded by a
    /// sole-source download hold XXH3-128), and where none has one the whole file's SHA-256 is checked before it is kept.
    /// </summary>
    private static (FileDigest Digest, bool CheckWhole) ForSeveralSources(List<SourceProbe> group, FileDigest digest)
    {
        if (group.Count == 1 || PieceHasher.IsCryptographic(digest.PieceAlgorithm))
        {
            return (digest, false);
        }

        FileDigest? strong = group.Select(p => p.Digest).FirstOrDefault(d => d is not null && d.PieceCount == digest.PieceCount && PieceHasher.IsCryptographic(d.PieceAlgorithm));
        return strong is null ? (digest, true) : (strong, false);
    }

    private async Task<DownloadResult> PiecesAsync(DownloadRequest request, List<SourceProbe> group, FileDigest digest, bool checkWhole, string partial, TransferProgress progress, long started, (FileShareConnection?, RangeReply)? opened, CancellationToken cancellationToken)
    {
        string remotePath = request.RemotePath;
        string statePath = PartialState.PathFor(partial);
        var state = new PartialState(remotePath, group.Select(p => p.Source.Endpoint).ToList(), digest, new PieceMap(digest.PieceCount));
        PartialHold? hold = null;
        bool resuming = false, receiving = false;
        // The connection the whole file was asked on is closed by the piece download once it runs; until then, here.
        FileShareConnection? unclaimed = opened?.Item1;
        try
        {
            hold = PartialHold.TryTakeExisting(partial, request.Destination);
            resuming = await LocalCopy.TryResumeAsync(request, digest, hold, state.Held, cancellationToken).ConfigureAwait(false);
            if (resuming)
            {
                RandomAccess.SetLength(hold!.Handle, digest.Length);
            }
            else
            {
                hold?.Discard();
                hold = OpenPartial(partial, request.Destination, digest.Length);
            }

            progress.SetTotal(digest.Length);
            long resumed = state.Held.HeldCount == 0 ? 0 : Enumerable.Range(0, digest.PieceCount).Where(state.Held.Has).Sum(digest.PieceLength);
            progress.AddResumed(resumed);

            var download = new PieceDownload(pool, remotePath, digest, hold.Handle, state.Held, progress, opened is ({ } connection, RangeReply range) ? (connection, range) : null);
            receiving = true;
            // A file of one piece has nothing worth recording until it is whole; the failure path still records it.
            using (var saving = digest.PieceCount > 1 ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken) : null)
            {
                Task saver = saving is null ? Task.CompletedTask : download.SaveStateWhileRunningAsync(state, statePath, saving.Token);
                try
                {
                    unclaimed = null;
                    await download.RunAsync(group, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    saving?.Cancel();
                    await LocalFile.SettleAsync(new ValueTask(saver)).ConfigureAwait(false);
                }
            }

            if (!state.Held.IsComplete)
            {
                throw await ExplainShortfallAsync(request, group, digest, download, cancellationToken).ConfigureAwait(false);
            }

            foreach ((DownloadSource source, FileShareException error) in download.Dropped)
            {
                request.SourceProblem?.Invoke(error);
            }

            if (checkWhole && !await LocalCopy.IsIdenticalAsync(hold.Handle, digest with { PieceHashes = [] }, cancellationToken).ConfigureAwait(false))
            {
                throw new FileShareException(FileShareErrorKind.ContentMismatch,
                    $"'{remotePath}' from {string.Join(", ", group.Select(p => p.Source.Endpoint))}: every piece matched its XXH3-128 hash but the whole file does not match the SHA-256 the sources agree on; a source sent forged pieces.",
                    group[0].Source.Endpoint, remotePath);
            }

            File.SetLastWriteTimeUtc(hold.Handle, digest.LastWriteTimeUtc);
            MoveIntoPlace(hold, request.Overwrite, group[0].Source.Endpoint, remotePath);
            if (resuming || digest.PieceCount > 1)
            {
                // Otherwise no record exists: a fresh start removed any stale one, and one piece is never saved on the way.
                PartialFile.TryDelete(statePath);
            }
            return new DownloadResult(request.Destination, digest.Length, Stopwatch.GetElapsedTime(started), group[0].Source.Endpoint, WireProtocol.FileShare, digest.Sha256Hex)
            {
                Sources = progress.Sources.Select(s => new SourceBytes(s.Endpoint!, s.BytesReceived)).ToList(),
                BytesResumed = resumed,
            };
        }
        catch (Exception e)
        {
            // Kept only with verified pieces to resume from: otherwise it would just hold its space (all of it, since it
            // is preallocated; the very space a full disk lacked) and leave an empty record behind.
            if (state.Held.HeldCount == 0
                || e is FileShareException { Kind: FileShareErrorKind.ContentMismatch or FileShareErrorKind.RemoteFileChanged or FileShareErrorKind.DestinationExists })
            {
                hold?.Discard();
            }
            else if (receiving)
            {
                state.TryWrite(statePath);
            }

            throw;
        }
        finally
        {
            unclaimed?.Dispose();
            hold?.Dispose();
        }
    }

    /// <summary>Why pieces are still missing: the only source's own failure, or which byte ranges no source could give.</summary>
    private async Task<FileShareException> ExplainShortfallAsync(DownloadRequest request, List<SourceProbe> group, FileDigest digest, PieceDownload download, CancellationToken cancellationToken)
    {
        List<(DownloadSource Source, FileShareException Error)> dropped = download.Dropped;

        // Every source gave up: a changed source explains the lot; otherwise their common reason, if they share one.
        if (dropped.Count == group.Count && dropped.FirstOrDefault(d => d.Error.Kind == FileShareErrorKind.RemoteFileChanged).Error is { } changed)
        {
            return changed;
        }

        if (dropped.Count == group.Count && dropped.All(d => d.Error.Kind == dropped[0].Error.Kind))
        {
            (DownloadSource source, FileShareException error) = dropped[0];
            return error.Kind is FileShareErrorKind.ContentMismatch or FileShareErrorKind.IncompleteTransfer
                ? await ExplainByVersionAsync(source.Host, source.Port, request.RemotePath, digest, error, cancellationToken).ConfigureAwait(false)
                : error;
        }

        foreach ((DownloadSource _, FileShareException error) in dropped)
        {
            request.SourceProblem?.Invoke(error);
        }

        string ranges = PieceMap.DescribeRanges(download.MissingPieces, digest.Length, digest.PieceSize);
        string sources = string.Join(", ", group.Select(p => p.Source.Endpoint));
        string why = dropped.Count == 0 ? "" : "; dropped on the way: " + string.Join("; ", dropped.Select(d => d.Error.Message));
        return new FileShareException(FileShareErrorKind.PiecesUnavailable,
            $"'{request.RemotePath}': no source has bytes {ranges} of its {digest.Length:N0} (asked {sources}){why}. The verified pieces are kept for a later Get-RemoteFile.",
            group[0].Source.Endpoint, request.RemotePath);
    }

    /// <summary>One stream from one server, for servers without piece hashes; nothing to resume, so a failure discards it.</summary>
    /// <param name="asked">A connection on which the whole file was already asked for, with the server's promise.</param>
    private async Task<DownloadResult> WholeFileAsync(DownloadSource source, string remotePath, string destinationPath, string partial, bool overwrite, FileDigest? digest, TransferProgress progress, long started, (FileShareConnection Connection, RangeReply Reply)? asked, CancellationToken cancellationToken)
    {
        PartialHold? hold = null;
        try
        {
            FileShareConnection connection = asked?.Connection ?? (await pool.RentAsync(source.Host, source.Port, cancellationToken).ConfigureAwait(false)).Connection;
            RangeReply reply;
            long length;
            using TransferRateLimit.RangeShare? share = asked is null ? Options.RateLimit?.Share() : null;
            try
            {
                // Never past the digest's length: the file may have grown since it was hashed.
                long firstPart = digest is null ? share?.PartLength ?? -1 : Math.Min(share?.PartLength ?? digest.Length, digest.Length);
                reply = asked?.Reply ?? await connection.RequestRangeAsync(remotePath, 0, firstPart, cancellationToken).ConfigureAwait(false);
                if (digest is not null && !reply.StillHolds(digest.Length, digest.LastWriteTimeUtc))
                {
                    throw Changed(connection.Endpoint, remotePath);
                }

                length = digest?.Length ?? (share is null ? reply.DataLength : reply.FileLength);
                progress.SetTotal(length);
                using PieceVerifier? verifier = digest is null ? null : new PieceVerifier(digest, remotePath, connection.Endpoint);
                // Without a digest the promise is all there is to go on: the file grows as bytes arrive, never ahead of them.
                hold = OpenPartial(partial, destinationPath, digest is null ? 0 : length);
                await connection.ReceiveRangeAsync(remotePath, hold.Handle, 0, progress, verifier, cancellationToken).ConfigureAwait(false);
                for (long done = reply.DataLength, part; done < length; done += part)
                {
                    part = Math.Min(share!.Value.PartLength, length - done);
                    RangeReply next = await connection.RequestRangeAsync(remotePath, done, part, cancellationToken).ConfigureAwait(false);
                    // Without a digest nothing checks the bytes, so the file must stay exactly as first promised.
                    bool holds = digest is null
                        ? next.FileLength == reply.FileLength && next.LastWriteTimeUtc == reply.LastWriteTimeUtc
                        : next.StillHolds(digest.Length, digest.LastWriteTimeUtc);
                    if (!holds || next.DataLength != part)
                    {
                        throw Changed(connection.Endpoint, remotePath);
                    }

                    await connection.ReceiveRangeAsync(remotePath, hold.Handle, done, progress, verifier, cancellationToken).ConfigureAwait(false);
                }

                verifier?.Complete();
            }
            finally
            {
                // A refusal (not found, path refused) leaves the connection in step; the pool disposes any other.
                pool.Return(connection);
            }

            File.SetLastWriteTimeUtc(hold.Handle, digest?.LastWriteTimeUtc ?? reply.LastWriteTimeUtc);
            MoveIntoPlace(hold, overwrite, source.Endpoint, remotePath);
            return new DownloadResult(destinationPath, length, Stopwatch.GetElapsedTime(started), source.Endpoint, WireProtocol.FileShare, digest?.Sha256Hex)
            {
                Sources = [new SourceBytes(source.Endpoint, length)],
            };
        }
        catch (FileShareException e) when (e.Kind is FileShareErrorKind.ContentMismatch or FileShareErrorKind.IncompleteTransfer && digest is not null)
        {
            hold?.Discard();
            throw await ExplainByVersionAsync(source.Host, source.Port, remotePath, digest, e, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            hold?.Discard();
            throw;
        }
        finally
        {
            hold?.Dispose();
        }
    }

    private async Task<DownloadResult> FromSeedServerAsync(DownloadRequest request, string partial, long started, CancellationToken cancellationToken)
    {
        DownloadSource source = request.Sources[0];
        foreach (DownloadSource other in request.Sources.Skip(1))
        {
            request.SourceProblem?.Invoke(new FileShareException(FileShareErrorKind.DestinationConflict,
                $"'{request.RemotePath}' from {other.Endpoint} cannot be shown to have the same content as the copy from {source.Endpoint} being downloaded (that server speaks only the original protocol); fetch one of them into another -Destination.",
                other.Endpoint, request.RemotePath));
        }

        RefuseReadOnly(new FileInfo(request.Destination), source.Endpoint, request.RemotePath);
        PartialHold hold = OpenPartial(partial, request.Destination, 0);
        try
        {
            long length = await SeedClient.DownloadAsync(source.Host, source.Port, request.RemotePath, hold.Handle, Options, request.Progress, cancellationToken).ConfigureAwait(false);
            MoveIntoPlace(hold, request.Overwrite, source.Endpoint, request.RemotePath);
            return new DownloadResult(request.Destination, length, Stopwatch.GetElapsedTime(started), source.Endpoint, WireProtocol.Seed)
            {
                Sources = [new SourceBytes(source.Endpoint, length)],
            };
        }
        catch
        {
            hold.Discard();
            throw;
        }
    }

    private static void MoveIntoPlace(PartialHold hold, bool overwrite, string endpoint, string remotePath)
    {
        try
        {
            hold.MoveTo(overwrite);
        }
        catch (IOException) when (!overwrite && File.Exists(hold.Destination))
        {
            throw DestinationExists(hold.Destination, endpoint, remotePath);
        }
        catch (IOException e) when (Directory.Exists(hold.Destination))
        {
            // A write failure, not DestinationExists: the verified pieces are kept, so the next run only renames them.
            throw new FileShareException(FileShareErrorKind.LocalWriteFailed,
                $"'{hold.Destination}' is a folder, so '{remotePath}' from {endpoint}, downloaded and verified, cannot take its place; it is kept as '{hold.Path}'. Move the folder away and run again.",
                endpoint, remotePath, e);
        }
    }

    /// <summary>
    /// A mismatch or a short transfer of a file whose version moved on since it was hashed (rewritten, or cut short
    /// while it was sent) is a changed file, not damage or a network fault.
    /// </summary>
    private async Task<FileShareException> ExplainByVersionAsync(string host, int port, string remotePath, FileDigest digest, FileShareException mismatch, CancellationToken cancellationToken)
    {
        try
        {
            (FileShareConnection connection, _) = await pool.RentAsync(host, port, cancellationToken).ConfigureAwait(false);
            try
            {
                RemoteEntry now = await connection.StatAsync(remotePath, cancellationToken).ConfigureAwait(false);
                return now.Length != digest.Length || now.LastWriteTimeUtc != digest.LastWriteTimeUtc ? Changed(connection.Endpoint, remotePath) : mismatch;
            }
            finally
            {
                pool.Return(connection);
            }
        }
        catch (FileShareException)
        {
            return mismatch;
        }
    }

    /// <summary>
    /// Makes the destination's folder unless this downloader made it for the download before: files of one folder
    /// one after another then pay no mkdir and stat each. A folder removed meanwhile is made again by <see cref="OpenPartial"/>.
    /// </summary>
    private void EnsureFolder(string folder)
    {
        if (!string.Equals(Volatile.Read(ref _lastFolderMade), folder, StringComparison.Ordinal))
        {
            Folder.Create(folder);
            Volatile.Write(ref _lastFolderMade, folder);
        }
    }

    private PartialHold OpenPartial(string partial, string destination, long length)
    {
        // Preallocation keeps a large file in few extents; a small one is written in one call anyway.
        long preallocation = length > SmallFile ? length : 0;
        try
        {
            return PartialHold.CreateNew(partial, destination, preallocation);
        }
        catch (DirectoryNotFoundException)
        {
            Volatile.Write(ref _lastFolderMade, null);
            EnsureFolder(Path.GetDirectoryName(partial)!);
            return PartialHold.CreateNew(partial, destination, preallocation);
        }
    }

    private void RefuseReadOnly(FileInfo destination, string endpoint, string remotePath)
    {
        if (!ReplaceReadOnly && destination.Exists && destination.Attributes.HasFlag(FileAttributes.ReadOnly))
        {
            throw new FileShareException(FileShareErrorKind.DestinationReadOnly,
                $"'{destination.FullName}' is read-only, so '{remotePath}' from {endpoint} was not downloaded over it; add -Force to replace read-only files.", endpoint, remotePath);
        }
    }

    private static FileShareException DestinationExists(string destinationPath, string endpoint, string remotePath) =>
        new(FileShareErrorKind.DestinationExists, $"'{destinationPath}' already exists.", endpoint, remotePath);

    internal static FileShareException Changed(string endpoint, string remotePath) =>
        new(FileShareErrorKind.RemoteFileChanged, $"'{remotePath}' on {endpoint} changed while it was being downloaded; nothing was kept. Try again once it stops changing.", endpoint, remotePath);
}

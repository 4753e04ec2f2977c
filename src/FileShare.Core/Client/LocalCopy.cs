using System.Buffers;
using System.Security.Cryptography;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>
/// What is already on the local disk, checked against a source's digest: a destination that may already hold the
/// file, and a partial file that a download may continue.
/// </summary>
internal static class LocalCopy
{
    // Reads of a local file checked by its whole-file hash (a digest without piece hashes).
    private const int WholeFileReadBuffer = 1024 * 1024;

    /// <summary>
    /// Whether the local file already has the digest's content: checked piece by piece in the digest's own piece
    /// algorithm (XXH3-128 or BLAKE3 read a 4 MiB piece several times faster than SHA-256 does), stopping at the first piece
    /// that differs; every piece matching vouches for the whole file's SHA-256, as it does for a download. A digest
    /// without piece hashes is checked by its whole-file SHA-256.
    /// </summary>
    public static async Task<bool> IsIdenticalAsync(string path, FileDigest digest, CancellationToken cancellationToken)
    {
        using SafeFileHandle local = File.OpenHandle(path, FileMode.Open, FileAccess.Read, System.IO.FileShare.Read, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await IsIdenticalAsync(local, digest, cancellationToken).ConfigureAwait(false);
    }

    public static async Task<bool> IsIdenticalAsync(SafeFileHandle local, FileDigest digest, CancellationToken cancellationToken)
    {
        if (RandomAccess.GetLength(local) != digest.Length)
        {
            return false;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(digest.Length, 1, digest.PieceCount > 0 ? digest.PieceSize : WholeFileReadBuffer));
        try
        {
            if (digest.PieceCount > 0)
            {
                for (int piece = 0; piece < digest.PieceCount; piece++)
                {
                    if (!await PieceMatchesAsync(local, digest, piece, buffer, cancellationToken).ConfigureAwait(false))
                    {
                        return false;
                    }
                }

                return true;
            }

            using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (long offset = 0; offset < digest.Length;)
            {
                int n = await RandomAccess.ReadAsync(local, buffer, offset, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return false;
                }

                whole.AppendData(buffer, 0, n);
                offset += n;
            }

            return whole.GetHashAndReset().AsSpan().SequenceEqual(digest.Sha256);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Gives a local copy with the source's content the source's write time too, as a download would have (rsync -t
    /// does the same for unchanged files), so a time compared later says what the content says. Not being allowed to
    /// (another user's file) is only noted: the content is what was asked for.
    /// </summary>
    public static void TakeWriteTime(string path, DateTime lastWriteTimeUtc, Action<string>? notice)
    {
        try
        {
            // The file a link leads to, whose content was compared: .NET would set the link's own time.
            string file = new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
            if (File.GetLastWriteTimeUtc(file) != lastWriteTimeUtc)
            {
                File.SetLastWriteTimeUtc(file, lastWriteTimeUtc);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            notice?.Invoke($"'{path}' already has the content but kept its own write time: {e.Message}");
        }
    }

    /// <summary>
    /// Marks the pieces of an earlier partial file (held by this download) that still verify against the source's
    /// digest; otherwise says why the download starts over. Returns whether there is anything to continue from. A
    /// source that changed since keeps the pieces it still has at the same place (a file appended to keeps all but
    /// its old last piece), as rsync would, since each is checked against the new piece hashes.
    /// </summary>
    public static async Task<bool> TryResumeAsync(DownloadRequest request, FileDigest digest, PartialHold? partial, PieceMap held, CancellationToken cancellationToken)
    {
        if (partial is null)
        {
            PartialFile.TryDelete(PartialState.PathFor(PartialFile.PathFor(request.Destination)));
            return false;
        }

        string name = request.RemotePath;
        PartialState? previous = PartialState.TryRead(PartialState.PathFor(partial.Path));
        string changed = previous is null || previous.Describes(digest) ? ""
            : $"the source changed since the partial download (SHA-256 {previous.Digest.Sha256Hex} then, {digest.Sha256Hex} now)";
        string? reason = !request.Resume ? "-Resume is off"
            : previous is null ? "the state record of its partial file is missing or unreadable"
            : previous.Digest.PieceSize != digest.PieceSize ? changed
            : null;
        if (reason is not null)
        {
            request.Notice?.Invoke($"'{name}': starting over, {reason}.");
            return false;
        }

        // The record may claim pieces whose bytes a crash lost before they reached the disk: check each one.
        int claimed = 0, kept = 0;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(digest.PieceSize);
        try
        {
            // A source that grew has pieces the old record never covered.
            for (int piece = 0; piece < Math.Min(digest.PieceCount, previous!.Held.Count); piece++)
            {
                if (!previous.Held.Has(piece))
                {
                    continue;
                }

                claimed++;
                if (await PieceMatchesAsync(partial.Handle, digest, piece, buffer, cancellationToken).ConfigureAwait(false))
                {
                    held.Set(piece);
                    kept++;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (changed.Length > 0)
        {
            request.Notice?.Invoke(kept == 0
                ? $"'{name}': starting over, {changed}, and none of its pieces is left."
                : $"'{name}': {changed}; resuming with the {kept} of {digest.PieceCount} pieces that are still the same.");
            return kept > 0;
        }

        request.Notice?.Invoke($"'{name}': resuming with {kept} of {digest.PieceCount} pieces already verified here{(kept < claimed ? $" ({claimed - kept} recorded pieces failed the check and will be fetched again)" : "")}.");
        return true;
    }

    /// <summary>Whether the local file holds piece <paramref name="piece"/> of <paramref name="digest"/>, read into <paramref name="buffer"/> (a piece long).</summary>
    private static async ValueTask<bool> PieceMatchesAsync(SafeFileHandle file, FileDigest digest, int piece, byte[] buffer, CancellationToken cancellationToken)
    {
        long offset = (long)piece * digest.PieceSize;
        int length = (int)digest.PieceLength(piece);
        int read = 0;
        while (read < length)
        {
            int n = await RandomAccess.ReadAsync(file, buffer.AsMemory(read, length - read), offset + read, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return false;
            }

            read += n;
        }

        return MatchesPiece(digest, piece, buffer.AsSpan(0, length));
    }

    private static bool MatchesPiece(FileDigest digest, int piece, ReadOnlySpan<byte> data)
    {
        Span<byte> actual = stackalloc byte[ProtocolConstants.Sha256Length];
        PieceHasher.HashPiece(digest.PieceAlgorithm, data, actual);
        return actual.SequenceEqual(digest.PieceHash(piece));
    }
}

using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// Computes each file's digest once and keeps it while the file stays the same version (same length and last write
/// time), so repeated requests cost nothing and a changed file is never described by a stale digest. Concurrent
/// requests for one file share one computation. Hashing reads asynchronously and at most a few files at a time, so
/// a large first hash does not hold up the server's other clients.
/// </summary>
internal sealed class FileHashCache(string root)
{
    private const int ReadBuffer = 1024 * 1024;
    private const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, (long Length, DateTime LastWrite, Task<FileDigest> Digest)> _entries = new();
    // At least two, so small files are not held up behind one large file's first hash.
    private readonly SemaphoreSlim _hashing = new(Math.Max(2, Environment.ProcessorCount));

    public Task<FileDigest> GetAsync(string fullPath, CancellationToken cancellationToken)
    {
        var info = new FileInfo(fullPath);
        long length = info.Length;
        DateTime lastWrite = info.LastWriteTimeUtc;
        if (_entries.TryGetValue(fullPath, out var cached) && cached.Length == length && cached.LastWrite == lastWrite && !cached.Digest.IsFaulted && !cached.Digest.IsCanceled)
        {
            return cached.Digest.WaitAsync(cancellationToken);
        }

        if (_entries.Count >= MaxEntries)
        {
            _entries.Clear();
        }

        // Not tied to the caller's token: one impatient client must not cancel the work others share.
        Task<FileDigest> digest = ComputeAsync(fullPath, length, lastWrite);
        _entries[fullPath] = (length, lastWrite, digest);
        return digest.WaitAsync(cancellationToken);
    }

    private async Task<FileDigest> ComputeAsync(string fullPath, long length, DateTime lastWrite)
    {
        await _hashing.WaitAsync().ConfigureAwait(false);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ReadBuffer);
        try
        {
            using var file = new FileStream(fullPath, FileMode.Open, FileAccess.Read, System.IO.FileShare.ReadWrite | System.IO.FileShare.Delete, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
            if (!SharePath.IsOpenedInside(root, file.SafeFileHandle))
            {
                throw new UnauthorizedAccessException($"'{fullPath}' leads outside the shared folder.");
            }

            using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var piece = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            int pieceSize = ProtocolConstants.PieceSize;
            byte[] pieces = new byte[FileDigest.PieceCountFor(length, pieceSize) * ProtocolConstants.Sha256Length];
            long offset = 0;
            int pieceIndex = 0;
            long pieceFilled = 0;
            while (offset < length)
            {
                int wanted = (int)Math.Min(buffer.Length, Math.Min(length - offset, pieceSize - pieceFilled));
                int read = await RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, wanted), offset).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException($"'{fullPath}' became shorter while it was being hashed.");
                }

                whole.AppendData(buffer, 0, read);
                piece.AppendData(buffer, 0, read);
                offset += read;
                pieceFilled += read;
                if (pieceFilled == pieceSize || offset == length)
                {
                    piece.GetHashAndReset(pieces.AsSpan(pieceIndex++ * ProtocolConstants.Sha256Length, ProtocolConstants.Sha256Length));
                    pieceFilled = 0;
                }
            }

            if (File.GetLastWriteTimeUtc(file.SafeFileHandle) != lastWrite || RandomAccess.GetLength(file.SafeFileHandle) != length)
            {
                throw new IOException($"'{fullPath}' changed while it was being hashed.");
            }

            return new FileDigest(length, lastWrite, whole.GetHashAndReset(), pieceSize, pieces);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _hashing.Release();
        }
    }
}

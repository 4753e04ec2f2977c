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
/// <remarks>
/// A first hash reads one buffer ahead while it hashes the one before, and hashes each buffer into the whole-file
/// digest and the piece digest on two threads at once: SHA-256 cannot be split within one digest, but the two
/// digests are independent, so wall time is about one pass over the file instead of two plus the reads.
/// </remarks>
internal sealed class FileHashCache
{
    private const int DefaultReadBuffer = 512 * 1024;
    private const int MaxEntries = 100_000;

    private readonly string _root;
    private readonly int _pieceSize;
    private readonly int _readBuffer;
    private readonly ConcurrentDictionary<string, (long Length, DateTime LastWrite, Task<FileDigest> Digest)> _entries = new();
    // Process-wide, as the CPU is: ten servers in one pwsh hash at most this many files at once between them. At least
    // two, so small files are not held up behind one large file's first hash.
    private static readonly int s_concurrentFiles = Math.Max(2, Environment.ProcessorCount);
    private static readonly SemaphoreSlim s_hashing = new(s_concurrentFiles);
    // Two buffers per file hashed at once, kept here: the shared pool keeps a returned array in the returning thread's
    // own slot, so buffers rented and returned on different pool threads missed it, and every first hash left its
    // buffers on the large object heap as garbage (18 MiB in 600 downloads of distinct files from ten servers).
    private static readonly ArrayPool<byte> s_buffers = ArrayPool<byte>.Create(DefaultReadBuffer, 2 * s_concurrentFiles);

    public FileHashCache(string root, int pieceSize = ProtocolConstants.PieceSize, int readBuffer = DefaultReadBuffer)
    {
        _root = root;
        _pieceSize = pieceSize;
        _readBuffer = Math.Min(readBuffer, DefaultReadBuffer);
    }

    public Task<FileDigest> GetAsync(string fullPath, CancellationToken cancellationToken)
    {
        var info = new FileInfo(fullPath);
        return GetAsync(fullPath, info.Length, info.LastWriteTimeUtc, cancellationToken);
    }

    /// <summary>As above, for a file whose length and last write time the caller has just read (through an open handle).</summary>
    public Task<FileDigest> GetAsync(string fullPath, long length, DateTime lastWrite, CancellationToken cancellationToken)
    {
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
        await s_hashing.WaitAsync().ConfigureAwait(false);
        byte[] hashing = s_buffers.Rent((int)Math.Clamp(length, 1, _readBuffer));
        byte[] reading = length > hashing.Length ? s_buffers.Rent(hashing.Length) : [];
        Task<int> pendingRead = Task.FromResult(0);
        try
        {
            using var file = new FileStream(fullPath, FileMode.Open, FileAccess.Read, System.IO.FileShare.ReadWrite | System.IO.FileShare.Delete, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
            if (!SharePath.IsOpenedInside(_root, file.SafeFileHandle))
            {
                throw new UnauthorizedAccessException($"'{fullPath}' leads outside the shared folder.");
            }

            using var pieces = new PieceHasher(length, _pieceSize);
            // A file of one piece has its whole-file digest equal to its only piece digest: hashed once.
            using IncrementalHash? whole = pieces.Count > 1 ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
            long offset = 0;
            pendingRead = ReadAsync(file, hashing, offset, length);
            while (offset < length)
            {
                int read = await pendingRead.ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException($"'{fullPath}' became shorter while it was being hashed.");
                }

                long next = offset + read;
                if (next < length)
                {
                    // A file that fit one buffer needs a second only if the kernel returned it in parts.
                    reading = reading.Length > 0 ? reading : s_buffers.Rent(hashing.Length);
                    pendingRead = ReadAsync(file, reading, next, length);
                }

                ReadOnlyMemory<byte> data = hashing.AsMemory(0, read);
                if (whole is null)
                {
                    pieces.Append(data.Span);
                }
                else
                {
                    Task wholeAppend = Task.Run(() => whole.AppendData(data.Span));
                    pieces.Append(data.Span);
                    await wholeAppend.ConfigureAwait(false);
                }

                (hashing, reading) = (reading, hashing);
                offset = next;
            }

            if (File.GetLastWriteTimeUtc(file.SafeFileHandle) != lastWrite || RandomAccess.GetLength(file.SafeFileHandle) != length)
            {
                throw new IOException($"'{fullPath}' changed while it was being hashed.");
            }

            byte[] sha256 = whole?.GetHashAndReset() ?? (length == 0 ? SHA256.HashData(ReadOnlySpan<byte>.Empty) : pieces.Digests[..ProtocolConstants.Sha256Length]);
            return new FileDigest(length, lastWrite, sha256, _pieceSize, pieces.Digests);
        }
        finally
        {
            // A read still in flight after a failure must not write into a buffer the pool has handed to someone else.
            await ((Task)pendingRead).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            s_buffers.Return(hashing);
            if (reading.Length > 0)
            {
                s_buffers.Return(reading);
            }

            s_hashing.Release();
        }
    }

    /// <summary>A task rather than a ValueTask: it is awaited only after the previous buffer is hashed.</summary>
    private static Task<int> ReadAsync(FileStream file, byte[] buffer, long offset, long length) =>
        RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - offset)), offset).AsTask();

    /// <summary>Digests of consecutive fixed-size pieces, fed with data in chunks of any size.</summary>
    private sealed class PieceHasher(long length, int pieceSize) : IDisposable
    {
        private readonly IncrementalHash _piece = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _hashed;
        private int _finished;

        public int Count { get; } = FileDigest.PieceCountFor(length, pieceSize);

        public byte[] Digests { get; } = new byte[FileDigest.PieceCountFor(length, pieceSize) * ProtocolConstants.Sha256Length];

        public void Append(ReadOnlySpan<byte> data)
        {
            while (!data.IsEmpty)
            {
                int take = (int)Math.Min(data.Length, pieceSize - (_hashed % pieceSize));
                _piece.AppendData(data[..take]);
                data = data[take..];
                _hashed += take;
                if (_hashed % pieceSize == 0 || _hashed == length)
                {
                    _piece.GetHashAndReset(Digests.AsSpan(_finished++ * ProtocolConstants.Sha256Length, ProtocolConstants.Sha256Length));
                }
            }
        }

        public void Dispose() => _piece.Dispose();
    }
}

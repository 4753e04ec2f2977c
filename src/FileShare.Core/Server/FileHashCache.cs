using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using FileShare.Protocol;

namespace FileShare.Server;

/// <summary>
/// Computes each file's digest once and keeps it while the file stays the same version (<see cref="FileVersion"/>:
/// length, last write time and, on Linux, inode and change time), so repeated requests cost nothing and a changed file
/// is never described by a stale digest. Concurrent requests for one file share one computation. Hashing reads
/// asynchronously and at most a few files at a time, so a large first hash does not hold up the server's other clients.
/// </summary>
/// <remarks>
/// A file that grew while it was hashed (a log still being written) keeps the digest of the bytes it had when the hash
/// began, as a snapshot: clients download that prefix, and every piece they take is checked against these hashes, so
/// a change inside the prefix is still caught. Any other change fails the hash.
///
/// A first hash reads one buffer ahead while it hashes the one before, and hashes each buffer into the whole-file
/// SHA-256 and the piece digests on two threads at once: SHA-256 cannot be split within one digest, but the two
/// are independent, so wall time is about one pass over the file instead of two plus the reads. The same pass makes
/// both BLAKE3 and XXH3-128 piece digests (together about as fast as the SHA-256 beside them: a first hash of 1 GiB
/// took 5% longer than with BLAKE3 alone), so whichever a client asks for first, the other is ready too; SHA-256 piece digests, for clients that predate piece algorithms, take a
/// pass of their own. A file of one piece has SHA-256 as its piece algorithm whatever is asked, since its piece
/// digest is then its whole-file digest, hashed once.
/// </remarks>
internal sealed class FileHashCache
{
    private const int DefaultReadBuffer = 512 * 1024;
    private const int MaxEntries = 100_000;

    /// <summary>
    /// Piece hashes kept before the cache starts afresh: a count of entries alone does not bound memory, since a
    /// 1 TiB file's piece hashes take 16 MiB (BLAKE3 and XXH3-128 together, 32 bytes each per piece).
    /// </summary>
    internal const long DefaultMaxPieceHashBytes = 256L << 20;

    private readonly string _root;
    private readonly int _pieceSize;
    private readonly int _readBuffer;
    private static readonly PieceHashAlgorithm[] s_legacyPieces = [PieceHashAlgorithm.Sha256];
    private static readonly PieceHashAlgorithm[] s_modernPieces = [PieceHashAlgorithm.Blake3, PieceHashAlgorithm.XxHash128];

    private readonly ConcurrentDictionary<(string Path, bool Legacy), (FileVersion Version, Lazy<Task<FileDigest[]>> Digests)> _entries = new();
    private readonly CancellationToken _lifetime;
    private readonly long _maxPieceHashBytes;
    private long _pieceHashBytes;
    private int _computations;
    // Process-wide, as the CPU is: ten servers in one pwsh hash at most this many files of several pieces at once
    // between them.
    private static readonly int s_concurrentFiles = Math.Max(2, Environment.ProcessorCount);
    private static readonly SemaphoreSlim s_hashing = new(s_concurrentFiles);
    // Files of one piece hash in milliseconds, so they have slots of their own (behind a large file's slot a 5-byte file
    // waited 25 s), but still a bounded number: without a bound 200 first hashes at once rented 400 read buffers the
    // pool below could not keep, and a host of ten servers grew by 150 MiB at 200 downloads of 1 MiB.
    private static readonly int s_concurrentSmallFiles = 4 * s_concurrentFiles;
    private static readonly SemaphoreSlim s_smallHashing = new(s_concurrentSmallFiles);
    // Two buffers per file hashed at once (in either kind of slot), kept here: the shared pool keeps a returned array
    // in the returning thread's own slot, so buffers rented and returned on different pool threads missed it, and every
    // first hash left its buffers on the large object heap as garbage (18 MiB in 600 downloads of distinct files).
    private static readonly ArrayPool<byte> s_buffers = ArrayPool<byte>.Create(DefaultReadBuffer, 2 * (s_concurrentFiles + s_concurrentSmallFiles));

    /// <param name="lifetime">Ends every hash still running: the server has stopped, and nobody is left to ask.</param>
    public FileHashCache(string root, int pieceSize = ProtocolConstants.PieceSize, int readBuffer = DefaultReadBuffer, CancellationToken lifetime = default, long maxPieceHashBytes = DefaultMaxPieceHashBytes)
    {
        _root = root;
        _maxPieceHashBytes = maxPieceHashBytes;
        _lifetime = lifetime;
        _pieceSize = pieceSize;
        _readBuffer = Math.Min(readBuffer, DefaultReadBuffer);
    }

    /// <summary>The digest with piece hashes in <paramref name="pieces"/> (SHA-256 for a file of one piece).</summary>
    public Task<FileDigest> GetAsync(string fullPath, PieceHashAlgorithm pieces, CancellationToken cancellationToken) =>
        GetAsync(fullPath, ShareFile.VersionOf(fullPath), pieces, cancellationToken);

    /// <summary>As above, for a file whose version the caller has just read (through an open handle).</summary>
    public Task<FileDigest> GetAsync(string fullPath, FileVersion version, PieceHashAlgorithm pieces, CancellationToken cancellationToken)
    {
        bool legacy = pieces == PieceHashAlgorithm.Sha256 || FileDigest.PieceCountFor(version.Length, _pieceSize) <= 1;
        int index = legacy ? 0 : Array.IndexOf(s_modernPieces, pieces);
        if (_entries.TryGetValue((fullPath, legacy), out var cached) && IsCurrent(cached, version))
        {
            return SelectAsync(cached.Digests.Value, index, cancellationToken);
        }

        if (_entries.Count >= MaxEntries || Volatile.Read(ref _pieceHashBytes) >= _maxPieceHashBytes)
        {
            _entries.Clear();
            Volatile.Write(ref _pieceHashBytes, 0);
        }

        // Not tied to the caller's token: one impatient client must not cancel the work others share. Callers that
        // miss at the same moment (a file just published, asked for by many) install one entry, and only the
        // computation in it runs.
        var computation = new Lazy<Task<FileDigest[]>>(() => ComputeAsync(fullPath, version, legacy ? s_legacyPieces : s_modernPieces));
        var entry = _entries.AddOrUpdate((fullPath, legacy),
            static (_, fresh) => fresh,
            static (_, existing, fresh) => IsCurrent(existing, fresh.Version) ? existing : fresh,
            (Version: version, Digests: computation));
        return SelectAsync(entry.Digests.Value, index, cancellationToken);
    }

    /// <summary>How many files of several pieces the process hashes at once.</summary>
    internal static int ConcurrentFiles => s_concurrentFiles;

    /// <summary>First hashes started so far (each reads the whole file).</summary>
    internal int Computations => Volatile.Read(ref _computations);

    private static bool IsCurrent((FileVersion Version, Lazy<Task<FileDigest[]>> Digests) entry, FileVersion version) =>
        entry.Version == version && !(entry.Digests.IsValueCreated && (entry.Digests.Value.IsFaulted || entry.Digests.Value.IsCanceled));

    private static async Task<FileDigest> SelectAsync(Task<FileDigest[]> digests, int index, CancellationToken cancellationToken) =>
        (await digests.WaitAsync(cancellationToken).ConfigureAwait(false))[index];

    private async Task<FileDigest[]> ComputeAsync(string fullPath, FileVersion version, PieceHashAlgorithm[] algorithms)
    {
        long length = version.Length;
        Interlocked.Increment(ref _computations);
        SemaphoreSlim slots = length > _pieceSize ? s_hashing : s_smallHashing;
        await slots.WaitAsync(_lifetime).ConfigureAwait(false);

        byte[] hashing = s_buffers.Rent((int)Math.Clamp(length, 1, _readBuffer));
        byte[] reading = length > hashing.Length ? s_buffers.Rent(hashing.Length) : [];
        Task<int> pendingRead = Task.FromResult(0);
        var pieces = new PieceDigests[algorithms.Length];
        try
        {
            using FileStream file = ShareFile.OpenConfined(_root, fullPath, FileOptions.Asynchronous | FileOptions.SequentialScan);

            int pieceCount = FileDigest.PieceCountFor(length, _pieceSize);
            for (int i = 0; i < algorithms.Length; i++)
            {
                pieces[i] = new PieceDigests(algorithms[i], length, _pieceSize, pieceCount);
            }

            using IncrementalHash? whole = pieceCount > 1 ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
            long offset = 0;
            pendingRead = ReadAsync(file, hashing, offset, length, _lifetime);
            while (offset < length)
            {
                int read = await pendingRead.ConfigureAwait(false);
                if (read == 0)
                {
                    throw new FileChangedException($"'{fullPath}' became shorter while it was being hashed.");
                }

                long next = offset + read;
                if (next < length)
                {
                    // A file that fit one buffer needs a second only if the kernel returned it in parts.
                    reading = reading.Length > 0 ? reading : s_buffers.Rent(hashing.Length);
                    pendingRead = ReadAsync(file, reading, next, length, _lifetime);
                }

                ReadOnlyMemory<byte> data = hashing.AsMemory(0, read);
                Task wholeAppend = whole is null ? Task.CompletedTask : Task.Run(() => whole.AppendData(data.Span));
                try
                {
                    foreach (PieceDigests piece in pieces)
                    {
                        piece.Append(data.Span);
                    }
                }
                finally
                {
                    // Even when a piece hash fails: the SHA-256 beside it reads this buffer and uses `whole`, both let go of below.
                    await wholeAppend.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }

                await wholeAppend.ConfigureAwait(false);

                (hashing, reading) = (reading, hashing);
                offset = next;
            }

            FileVersion now = ShareFile.VersionOf(file.SafeFileHandle);
            if (now != version && !(now.Inode == version.Inode && now.Length > version.Length))
            {
                throw new FileChangedException($"'{fullPath}' changed while it was being hashed.");
            }

            byte[] sha256 = whole?.GetHashAndReset() ?? (length == 0 ? SHA256.HashData(ReadOnlySpan<byte>.Empty) : pieces[0].Hashes[..ProtocolConstants.Sha256Length]);
            Interlocked.Add(ref _pieceHashBytes, pieces.Sum(p => (long)p.Hashes.Length));
            return Array.ConvertAll(pieces, p => new FileDigest(length, version.LastWriteUtc, sha256, _pieceSize, p.Hashes, p.Algorithm));
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

            foreach (PieceDigests? piece in pieces)
            {
                piece?.Dispose();
            }

            slots.Release();
        }
    }

    /// <summary>A task rather than a ValueTask: it is awaited only after the previous buffer is hashed.</summary>
    private static Task<int> ReadAsync(FileStream file, byte[] buffer, long offset, long length, CancellationToken cancellationToken) =>
        RandomAccess.ReadAsync(file.SafeFileHandle, buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - offset)), offset, cancellationToken).AsTask();

    /// <summary>One algorithm's piece hashes of a file, filled in as its bytes go by.</summary>
    private sealed class PieceDigests(PieceHashAlgorithm algorithm, long length, int pieceSize, int pieceCount) : IDisposable
    {
        private readonly PieceHasher _hasher = new(algorithm, length, pieceSize);
        private PieceHashed? _keep;

        public PieceHashAlgorithm Algorithm => algorithm;

        public byte[] Hashes { get; } = new byte[pieceCount * ProtocolConstants.Sha256Length];

        public void Append(ReadOnlySpan<byte> data) =>
            _hasher.Append(data, _keep ??= (piece, digest) => digest.CopyTo(Hashes.AsSpan(piece * ProtocolConstants.Sha256Length)));

        public void Dispose() => _hasher.Dispose();
    }
}

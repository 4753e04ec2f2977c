using System.Diagnostics;
using System.Security.Cryptography;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

/// <summary>One finished download; <see cref="Sha256"/> is the verified content hash when the server offers hashes.</summary>
public sealed record DownloadResult(string Path, long Length, TimeSpan Duration, string Endpoint, WireProtocol Protocol, string? Sha256 = null, bool Skipped = false);

/// <summary>
/// Downloads whole files into a hidden ".partial" beside the destination and renames it into place only when
/// every promised byte has arrived and matched the server's piece hashes, so the destination never holds a half
/// or damaged file. Any failure or cancellation removes the partial file.
/// </summary>
public sealed class FileDownloader(ConnectionPool pool)
{
    public FileShareClientOptions Options => pool.Options;

    /// <summary>Check every piece against the server's SHA-256 digest (servers that cannot hash are trusted as before).</summary>
    public bool Verify { get; init; } = true;

    /// <summary>Leave an existing destination alone when its SHA-256 already equals the server's.</summary>
    public bool SkipIdentical { get; init; }

    public async Task<DownloadResult> DownloadAsync(string host, int port, string remotePath, string destinationPath, bool overwrite, TransferProgress? progress, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        string endpoint = Endpoint.Format(host, port);
        Directory.CreateDirectory(Path.GetDirectoryName(destinationPath)!);
        if (!overwrite && !SkipIdentical && File.Exists(destinationPath))
        {
            throw DestinationExists(destinationPath, endpoint, remotePath);
        }

        string partial = PartialFile.PathFor(destinationPath);
        try
        {
            bool seed = Options.Protocol == WireProtocol.Seed || pool.IsSeedServer(host, port);
            Fetched fetched = seed
                ? await FetchFromSeedAsync(host, port, remotePath, partial, progress, cancellationToken).ConfigureAwait(false)
                : await FetchAsync(host, port, remotePath, destinationPath, partial, overwrite, progress, cancellationToken).ConfigureAwait(false);
            if (fetched.SpeaksSeedOnly)
            {
                seed = true;
                fetched = await FetchFromSeedAsync(host, port, remotePath, partial, progress, cancellationToken).ConfigureAwait(false);
            }

            if (fetched.Skipped)
            {
                return new DownloadResult(destinationPath, fetched.Length, Stopwatch.GetElapsedTime(started), endpoint, WireProtocol.FileShare, fetched.Digest?.Sha256Hex, Skipped: true);
            }

            if (fetched.LastWrite is { } time)
            {
                File.SetLastWriteTimeUtc(partial, time);
            }

            try
            {
                File.Move(partial, destinationPath, overwrite);
            }
            catch (IOException) when (!overwrite && File.Exists(destinationPath))
            {
                throw DestinationExists(destinationPath, endpoint, remotePath);
            }

            return new DownloadResult(destinationPath, fetched.Length, Stopwatch.GetElapsedTime(started), endpoint, seed ? WireProtocol.Seed : WireProtocol.FileShare, fetched.Digest?.Sha256Hex);
        }
        catch
        {
            PartialFile.TryDelete(partial);
            throw;
        }
    }

    private readonly record struct Fetched(long Length, DateTime? LastWrite = null, FileDigest? Digest = null, bool Skipped = false, bool SpeaksSeedOnly = false);

    private async Task<Fetched> FetchAsync(string host, int port, string remotePath, string destinationPath, string partial, bool overwrite, TransferProgress? progress, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            FileShareConnection connection;
            bool reused;
            try
            {
                (connection, reused) = await pool.RentAsync(host, port, cancellationToken).ConfigureAwait(false);
            }
            catch (FileShareException e) when (e.Kind == FileShareErrorKind.NotSupportedBySeedServer && Options.Protocol == WireProtocol.Auto)
            {
                pool.MarkSeedServer(host, port);
                return new Fetched(-1, SpeaksSeedOnly: true);
            }

            FileDigest? digest = null;
            try
            {
                digest = Verify ? await TryDigestAsync(connection, remotePath, cancellationToken).ConfigureAwait(false) : null;
                if (File.Exists(destinationPath))
                {
                    if (digest is not null && SkipIdentical && await IsIdenticalAsync(destinationPath, digest, cancellationToken).ConfigureAwait(false))
                    {
                        pool.Return(connection);
                        return new Fetched(digest.Length, digest.LastWriteTimeUtc, digest, Skipped: true);
                    }

                    if (!overwrite)
                    {
                        throw DestinationExists(destinationPath, connection.Endpoint, remotePath);
                    }
                }

                RangeReply reply = await connection.RequestRangeAsync(remotePath, 0, -1, cancellationToken).ConfigureAwait(false);
                if (digest is not null && (reply.FileLength != digest.Length || reply.LastWriteTimeUtc != digest.LastWriteTimeUtc))
                {
                    throw Changed(connection.Endpoint, remotePath);
                }

                progress?.SetTotal(reply.DataLength);
                using PieceVerifier? verifier = digest is null ? null : new PieceVerifier(digest, remotePath, connection.Endpoint);
                using (SafeFileHandle handle = OpenPartial(partial, reply.DataLength))
                {
                    await connection.ReceiveRangeAsync(remotePath, handle, 0, progress, verifier, cancellationToken).ConfigureAwait(false);
                }

                verifier?.Complete();
                pool.Return(connection);
                return new Fetched(reply.DataLength, reply.LastWriteTimeUtc, digest);
            }
            catch (FileShareException e) when (reused && attempt == 0 && e.Kind is FileShareErrorKind.ConnectionFailed or FileShareErrorKind.IncompleteTransfer)
            {
                // A pooled connection the server has since closed; one fresh attempt tells a stale socket from a dead server.
                connection.Dispose();
            }
            catch (FileShareException e) when (e.Kind == FileShareErrorKind.ContentMismatch && digest is not null)
            {
                pool.Return(connection);
                throw await ExplainMismatchAsync(host, port, remotePath, digest, e, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // A refusal (not found, path refused) leaves the connection in step; the pool disposes any other.
                pool.Return(connection);
                throw;
            }
        }
    }

    /// <summary>The digest, or null from a server that does not know the request (it then cannot be verified).</summary>
    private static async Task<FileDigest?> TryDigestAsync(FileShareConnection connection, string remotePath, CancellationToken cancellationToken)
    {
        try
        {
            return await connection.HashAsync(remotePath, cancellationToken).ConfigureAwait(false);
        }
        catch (FileShareException e) when (e.Kind == FileShareErrorKind.BadRequest)
        {
            return null;
        }
    }

    private static async Task<bool> IsIdenticalAsync(string path, FileDigest digest, CancellationToken cancellationToken)
    {
        if (new FileInfo(path).Length != digest.Length)
        {
            return false;
        }

        await using var local = new FileStream(path, FileMode.Open, FileAccess.Read, System.IO.FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        byte[] hash = await SHA256.HashDataAsync(local, cancellationToken).ConfigureAwait(false);
        return hash.AsSpan().SequenceEqual(digest.Sha256);
    }

    /// <summary>A mismatch on a file whose version moved on since it was hashed is a changed file, not damage.</summary>
    private async Task<FileShareException> ExplainMismatchAsync(string host, int port, string remotePath, FileDigest digest, FileShareException mismatch, CancellationToken cancellationToken)
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

    private async Task<Fetched> FetchFromSeedAsync(string host, int port, string remotePath, string partial, TransferProgress? progress, CancellationToken cancellationToken)
    {
        using SafeFileHandle handle = OpenPartial(partial, 0);
        return new Fetched(await SeedClient.DownloadAsync(host, port, remotePath, handle, Options, progress, cancellationToken).ConfigureAwait(false));
    }

    private static SafeFileHandle OpenPartial(string partial, long length)
    {
        SafeFileHandle handle = File.OpenHandle(partial, FileMode.Create, FileAccess.Write, System.IO.FileShare.None, FileOptions.None, length);
        if (OperatingSystem.IsWindows())
        {
            File.SetAttributes(partial, File.GetAttributes(partial) | FileAttributes.Hidden);
        }

        return handle;
    }

    private static FileShareException DestinationExists(string destinationPath, string endpoint, string remotePath) =>
        new(FileShareErrorKind.DestinationExists, $"'{destinationPath}' already exists.", endpoint, remotePath);

    private static FileShareException Changed(string endpoint, string remotePath) =>
        new(FileShareErrorKind.RemoteFileChanged, $"'{remotePath}' on {endpoint} changed while it was being downloaded; nothing was kept. Try again once it stops changing.", endpoint, remotePath);
}

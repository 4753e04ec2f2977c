using System.Diagnostics;
using FileShare.Protocol;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Client;

public sealed record DownloadResult(string Path, long Length, TimeSpan Duration, string Endpoint, WireProtocol Protocol);

/// <summary>
/// Downloads whole files into a hidden ".partial" beside the destination and renames it into place only when
/// every promised byte has arrived, so the destination never holds a half file. Any failure or cancellation
/// removes the partial file.
/// </summary>
public sealed class FileDownloader(ConnectionPool pool)
{
    public FileShareClientOptions Options => pool.Options;

    public async Task<DownloadResult> DownloadAsync(string host, int port, string remotePath, string destinationPath, bool overwrite, TransferProgress? progress, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        string endpoint = Endpoint.Format(host, port);
        Directory.CreateDirectory(Path.GetDirectoryName(destinationPath)!);
        if (!overwrite && File.Exists(destinationPath))
        {
            throw new FileShareException(FileShareErrorKind.DestinationExists, $"'{destinationPath}' already exists.", endpoint, remotePath);
        }

        string partial = PartialFile.PathFor(destinationPath);
        try
        {
            bool seed = Options.Protocol == WireProtocol.Seed || pool.IsSeedServer(host, port);
            (long length, DateTime? lastWrite) = seed
                ? (await FetchFromSeedAsync(host, port, remotePath, partial, progress, cancellationToken).ConfigureAwait(false), null)
                : await FetchAsync(host, port, remotePath, partial, progress, cancellationToken).ConfigureAwait(false);
            if (length < 0)
            {
                seed = true;
                length = await FetchFromSeedAsync(host, port, remotePath, partial, progress, cancellationToken).ConfigureAwait(false);
            }

            if (lastWrite is { } time)
            {
                File.SetLastWriteTimeUtc(partial, time);
            }

            try
            {
                File.Move(partial, destinationPath, overwrite);
            }
            catch (IOException) when (!overwrite && File.Exists(destinationPath))
            {
                throw new FileShareException(FileShareErrorKind.DestinationExists, $"'{destinationPath}' appeared while it was being downloaded.", endpoint, remotePath);
            }

            return new DownloadResult(destinationPath, length, Stopwatch.GetElapsedTime(started), endpoint, seed ? WireProtocol.Seed : WireProtocol.FileShare);
        }
        catch
        {
            PartialFile.TryDelete(partial);
            throw;
        }
    }

    /// <summary>Length and time of the fetched file, or length -1 when the server turned out to speak only the original protocol.</summary>
    private async Task<(long, DateTime?)> FetchAsync(string host, int port, string remotePath, string partial, TransferProgress? progress, CancellationToken cancellationToken)
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
                return (-1, null);
            }

            try
            {
                RangeReply reply = await connection.RequestRangeAsync(remotePath, 0, -1, cancellationToken).ConfigureAwait(false);
                progress?.SetTotal(reply.DataLength);
                using (SafeFileHandle handle = OpenPartial(partial, reply.DataLength))
                {
                    await connection.ReceiveRangeAsync(remotePath, handle, 0, progress, cancellationToken).ConfigureAwait(false);
                }

                pool.Return(connection);
                return (reply.DataLength, reply.LastWriteTimeUtc);
            }
            catch (FileShareException e) when (reused && attempt == 0 && e.Kind is FileShareErrorKind.ConnectionFailed or FileShareErrorKind.IncompleteTransfer)
            {
                // A pooled connection the server has since closed; one fresh attempt tells a stale socket from a dead server.
                connection.Dispose();
            }
            catch
            {
                // A refusal (not found, path refused) leaves the connection in step; the pool disposes any other.
                pool.Return(connection);
                throw;
            }
        }
    }

    private async Task<long> FetchFromSeedAsync(string host, int port, string remotePath, string partial, TransferProgress? progress, CancellationToken cancellationToken)
    {
        using SafeFileHandle handle = OpenPartial(partial, 0);
        return await SeedClient.DownloadAsync(host, port, remotePath, handle, Options, progress, cancellationToken).ConfigureAwait(false);
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
}

using FileShare.Protocol;

namespace FileShare.Client;

/// <summary>What a source said about the file; <see cref="Opened"/> is a connection with the whole file already asked for.</summary>
internal sealed record SourceProbe(DownloadSource Source, FileDigest? Digest, PieceMap? Pieces, FileShareException? Error)
{
    public FileShareConnection? Opened { get; init; }

    public RangeReply Range { get; init; }
}

/// <summary>
/// Asks a download's sources what they hold of the file (its digest, and which pieces a partial copy has), and for a
/// lone source with nothing here yet asks for the whole file in the same round trip.
/// </summary>
internal sealed class SourceProber(ConnectionPool pool, bool verify)
{
    /// <summary>
    /// A lone source known to answer piece maps, for a file with nothing here yet: its digest and the whole file are
    /// asked for in one round trip (nothing to skip, resume or split, so the read is wanted whatever the digest says).
    /// Not under a rate cap, which asks for files in parts (<see cref="TransferRateLimit.Share"/>).
    /// </summary>
    public bool CanAskTogether(DownloadRequest request, string partial) =>
        verify && pool.Options.RateLimit is null && request.Sources.Count == 1 && pool.Options.Protocol != WireProtocol.Seed && pool.AnswersPieceMaps(request.Sources[0].Endpoint)
        && !File.Exists(request.Destination) && !File.Exists(partial);

    /// <summary>Asks every source, at once, for the file's digest and which pieces it holds.</summary>
    public async Task<List<SourceProbe>> ProbeAsync(DownloadRequest request, CancellationToken cancellationToken)
    {
        bool soleSource = request.Sources.Count == 1;
        Task<SourceProbe>[] probes = request.Sources.Select(source => ProbeAsync(source, request.RemotePath, soleSource, cancellationToken)).ToArray();
        return [.. await Task.WhenAll(probes).ConfigureAwait(false)];
    }

    private Task<SourceProbe> ProbeAsync(DownloadSource source, string remotePath, bool soleSource, CancellationToken cancellationToken) =>
        AskAsync(source, async connection =>
        {
            (FileDigest? digest, PieceMap? pieces) = verify ? await TryDigestAsync(connection, remotePath, soleSource, cancellationToken).ConfigureAwait(false) : default;
            pool.Return(connection);
            return new SourceProbe(source, digest, pieces, null);
        }, cancellationToken);

    /// <param name="ahead">A connection on which the requests were already sent (by the download before this one).</param>
    public Task<SourceProbe> ProbeAndOpenAsync(DownloadSource source, string remotePath, FileShareConnection? ahead, DownloadRequest? next, CancellationToken cancellationToken) =>
        AskAsync(source, async connection =>
        {
            (FileDigest digest, PieceMap? held, RangeReply range) = await connection.HashAndReadAsync(remotePath, cancellationToken).ConfigureAwait(false);
            await AskAheadAsync(connection, next, cancellationToken).ConfigureAwait(false);
            return new SourceProbe(source, digest, held, null) { Opened = connection, Range = range };
        }, cancellationToken, ahead);

    /// <summary>Rents a connection to <paramref name="source"/> (or takes <paramref name="first"/>) and asks; a server's refusal becomes the probe's error.</summary>
    private async Task<SourceProbe> AskAsync(DownloadSource source, Func<FileShareConnection, Task<SourceProbe>> ask, CancellationToken cancellationToken, FileShareConnection? first = null)
    {
        if (first is { CanReadAnswersAhead: false })
        {
            // The download before this one failed part-way (a local write, say): its bytes are still on the wire.
            first.Dispose();
            first = null;
        }

        for (int attempt = 0; ; attempt++)
        {
            FileShareConnection connection;
            bool reused;
            try
            {
                (connection, reused) = attempt == 0 && first is not null
                    ? (first, true)
                    : await pool.RentAsync(source.Host, source.Port, cancellationToken).ConfigureAwait(false);
            }
            catch (FileShareException e)
            {
                return new SourceProbe(source, null, null, e);
            }

            try
            {
                return await ask(connection).ConfigureAwait(false);
            }
            catch (FileShareException e) when (reused && attempt == 0 && e.Kind is FileShareErrorKind.ConnectionFailed or FileShareErrorKind.IncompleteTransfer)
            {
                // A pooled connection the server has since closed; one fresh attempt tells a stale socket from a dead server.
                connection.Dispose();
            }
            catch (FileShareException e)
            {
                // A refusal (not found, path refused) leaves the connection in step; the pool disposes any other.
                pool.Return(connection);
                return new SourceProbe(source, null, null, e);
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="next"/>'s digest and read requests on <paramref name="connection"/>, which has just
    /// answered this download's, when they could be sent together and go to the same server. The next download takes
    /// the connection over; a failure to send leaves it to ask for itself.
    /// </summary>
    private async Task AskAheadAsync(FileShareConnection connection, DownloadRequest? next, CancellationToken cancellationToken)
    {
        if (next is null || next.Sources[0].Endpoint != connection.Endpoint || !CanAskTogether(next, PartialFile.PathFor(next.Destination)))
        {
            return;
        }

        try
        {
            await connection.SendHashAndReadAheadAsync(next.RemotePath, cancellationToken).ConfigureAwait(false);
            next.HoldRequestsAhead(connection);
        }
        catch (FileShareException)
        {
            // The connection failed: this download's bytes tell, and the next one opens its own.
        }
    }

    /// <summary>
    /// The digest and, for a partial copy, the pieces the server holds; a server that predates piece maps is asked
    /// again for the digest alone, and one that cannot hash gives null (its file then cannot be verified).
    /// </summary>
    private async Task<(FileDigest? Digest, PieceMap? Held)> TryDigestAsync(FileShareConnection connection, string remotePath, bool soleSource, CancellationToken cancellationToken)
    {
        try
        {
            (FileDigest digest, PieceMap? held) = await connection.HashWithPiecesAsync(remotePath, soleSource, cancellationToken).ConfigureAwait(false);
            pool.MarkAnswersPieceMaps(connection.Endpoint);
            return (digest, held);
        }
        catch (FileShareException e) when (e.Kind == FileShareErrorKind.BadRequest)
        {
        }

        try
        {
            return (await connection.HashAsync(remotePath, cancellationToken).ConfigureAwait(false), null);
        }
        catch (FileShareException e) when (e.Kind == FileShareErrorKind.BadRequest)
        {
            return default;
        }
    }
}

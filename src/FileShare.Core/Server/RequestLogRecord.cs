namespace FileShare.Server;

public enum RequestKind
{
    List,
    Stat,
    Read,
    Hash,
    SeedGet,
    Handshake,

    /// <summary>A connection dropped by a limit between or inside requests (e.g. slower than the minimum data rate).</summary>
    Connection,

    /// <summary>
    /// Not a request: something in the shared folder the operator should know, such as a name the protocol cannot
    /// carry, which is therefore neither listed nor served. Logged once per name while the server runs.
    /// </summary>
    Notice,
}

/// <summary>One line of a server's log: one request, or one refused connection.</summary>
public sealed record RequestLogRecord(
    DateTime Time,
    int Port,
    string RemoteEndPoint,
    RequestKind Request,
    string Path,
    long Bytes,
    TimeSpan Duration,
    string Outcome);

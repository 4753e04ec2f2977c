namespace FileShare.Client;

/// <summary>A server that offers the file.</summary>
public sealed record DownloadSource(string Host, int Port)
{
    public string Endpoint => Client.Endpoint.Format(Host, Port);

    /// <summary>Reads "host:port" or "[IPv6 address]:port"; null for anything else (a bare IPv6 address is ambiguous).</summary>
    public static DownloadSource? TryParse(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            return null;
        }

        string host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        else if (host.Contains(':'))
        {
            return null;
        }

        return host.Length == 0 ? null : new DownloadSource(host, port);
    }

    /// <summary>
    /// The server a computer name stands for: "host" or a bare IPv6 address at <paramref name="port"/>, or "host:port"
    /// and "[IPv6 address]:port" at the port written there.
    /// </summary>
    public static DownloadSource FromComputerName(string computerName, int port) =>
        TryParse(computerName) ?? new DownloadSource(computerName is ['[', .., ']'] ? computerName[1..^1] : computerName, port);

    public override string ToString() => Endpoint;
}

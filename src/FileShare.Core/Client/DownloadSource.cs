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

    /// <summary>
    /// Why <paramref name="computerName"/> cannot name a server, in words that say what to write instead; null when
    /// it can. Catches what people paste from elsewhere (a URL, a UNC or local path, "host:99999") before it
    /// becomes a name lookup that fails with "Name or service not known".
    /// </summary>
    public static string? ProblemWith(string computerName)
    {
        if (Uri.TryCreate(computerName, UriKind.Absolute, out Uri? url) && computerName.Contains("://", StringComparison.Ordinal) && url.Host.Length > 0)
        {
            string urlHost = url.HostNameType == UriHostNameType.IPv6 ? url.Host[1..^1] : url.Host;
            string server = url.IsDefaultPort ? url.Host : Client.Endpoint.Format(urlHost, url.Port);
            return $"'{computerName}' is a URL; name the computer alone, with its port if that is not -Port: '{server}'.";
        }

        if (computerName.StartsWith(@"\\", StringComparison.Ordinal) || computerName.StartsWith("//", StringComparison.Ordinal))
        {
            string server = computerName.TrimStart('\\', '/').Split('\\', '/')[0];
            return $"'{computerName}' is a network path; name the computer alone ('{server}'), and the file or folder with -Name or -Path.";
        }

        int colon = computerName.LastIndexOf(':');
        bool bracketed = computerName.StartsWith('[');
        if (colon > 0 && (bracketed || computerName.IndexOf(':') == colon) && TryParse(computerName) is null
            && computerName.AsSpan(colon + 1) is { Length: > 0 } written && written.IndexOfAnyExceptInRange('0', '9') < 0)
        {
            return $"'{computerName}' has port {written}, which is not from 1 to 65535.";
        }

        string host = FromComputerName(computerName, port: 1).Host;
        if (Uri.CheckHostName(host) != UriHostNameType.Unknown)
        {
            return null;
        }

        return host.IndexOfAny(['/', '\\']) >= 0
            ? $"'{computerName}' is a path, not a computer; name the server by host name or address (with ':port' if that is not -Port), and a file or folder on it with -Name or -Path."
            : $"'{computerName}' is not a host name or an IP address (write an IPv6 address with a port as [address]:port).";
    }

    public override string ToString() => Endpoint;
}

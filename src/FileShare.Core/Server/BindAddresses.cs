using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace FileShare.Server;

/// <summary>What an address given to listen on stands for: itself, or every address of a host name.</summary>
public static class BindAddresses
{
    /// <summary>
    /// The addresses to listen on for <paramref name="name"/>: an IP address as it is, <c>localhost</c> as the
    /// loopback address of each IP version this machine runs, any other name as every address it resolves to.
    /// </summary>
    /// <exception cref="SocketException">The name does not resolve.</exception>
    public static IPAddress[] Of(string name)
    {
        if (IPAddress.TryParse(name, out IPAddress? address))
        {
            return [address];
        }

        // As RFC 6761 and Kestrel read it, whatever the resolver says: hosts files often list only one of the two, and a
        // client that picks the other would be refused.
        if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase) && ConfiguredLoopbacks() is { Length: > 0 } loopbacks)
        {
            return loopbacks;
        }

        IPAddress[] resolved = Dns.GetHostAddresses(name);
        return resolved.Length > 0 ? resolved : throw new SocketException((int)SocketError.HostNotFound);
    }

    private static IPAddress[] ConfiguredLoopbacks()
    {
        IPAddress[] configured = NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(adapter => adapter.GetIPProperties().UnicastAddresses)
            .Select(unicast => unicast.Address)
            .ToArray();
        return [.. new[] { IPAddress.Loopback, IPAddress.IPv6Loopback }.Where(configured.Contains)];
    }
}

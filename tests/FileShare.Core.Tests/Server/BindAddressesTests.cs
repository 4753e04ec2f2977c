using System.Net;
using System.Net.Sockets;
using FileShare.Server;

namespace FileShare.Tests.Server;

public sealed class BindAddressesTests
{
    [Theory]
    [InlineData("localhost")]
    [InlineData("LOCALHOST")]
    public void Localhost_is_both_loopbacks_even_where_the_resolver_names_one(string name)
    {
        // Many hosts files (this machine's among them) map localhost to 127.0.0.1 only; a listener there alone refuses ::1 clients.
        Assert.Equal([IPAddress.Loopback, IPAddress.IPv6Loopback], BindAddresses.Of(name));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("203.0.113.7")]
    public void An_ip_address_stands_for_itself_only(string text)
    {
        Assert.Equal([IPAddress.Parse(text)], BindAddresses.Of(text));
    }

    [Fact]
    public void A_name_that_does_not_resolve_is_a_socket_error()
    {
        // .invalid never resolves (RFC 6761).
        Assert.ThrowsAny<SocketException>(() => BindAddresses.Of("no-such-host.invalid"));
    }
}

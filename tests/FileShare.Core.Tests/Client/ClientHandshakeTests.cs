using System.Net.Sockets;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Tests.Support;

namespace FileShare.Tests.Client;

public sealed class ClientHandshakeTests : ServerTestBase
{
    [Fact]
    public async Task A_server_that_speaks_only_a_later_version_is_UnsupportedVersion_naming_it_and_the_connection_is_closed()
    {
        const ushort laterVersion = ProtocolConstants.MaxVersion + 1;
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            byte[] hello = new byte[ProtocolConstants.HelloLength];
            await stream.ReadExactlyAsync(hello, ct);
            Messages.WriteServerHello(hello, laterVersion, StatusCode.UnsupportedVersion, 0);
            await stream.WriteAsync(hello, ct);
            await AssertClosedWithNothingMoreAsync(stream, ct);
        });

        var refused = await Assert.ThrowsAsync<FileShareException>(() => OpenAsync(server.Port, ClientOptions()));

        Assert.Equal(FileShareErrorKind.UnsupportedVersion, refused.Kind);
        Assert.Equal(EndpointOf(server.Port), refused.Endpoint);
        Assert.Contains(EndpointOf(server.Port), refused.Message);
        Assert.Contains($"protocol version {laterVersion}", refused.Message);
        await server.Completion.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_server_silent_after_the_hello_is_a_timeout_naming_it_asking_whether_it_is_a_FileShare_server_and_the_connection_is_closed()
    {
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            await stream.ReadExactlyAsync(new byte[ProtocolConstants.HelloLength], ct);
            await AssertClosedWithNothingMoreAsync(stream, ct);
        });

        var silent = await Assert.ThrowsAsync<FileShareException>(() => OpenAsync(server.Port, ClientOptions(readTimeout: TimeSpan.FromSeconds(1))));

        Assert.Equal(FileShareErrorKind.Timeout, silent.Kind);
        Assert.Equal(EndpointOf(server.Port), silent.Endpoint);
        Assert.Contains(EndpointOf(server.Port), silent.Message);
        // An HTTP server, for one, waits in silence for a request line: the message says what to check.
        Assert.Contains("is it a FileShare server?", silent.Message);
        await server.Completion.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static async Task OpenAsync(int port, FileShareClientOptions options)
    {
        Socket socket = await Endpoint.ConnectAsync(Host, port, options, CancellationToken.None);
        (Stream stream, _) = await new ClientHandshake(Host, EndpointOf(port), options).OpenAsync(socket, CancellationToken.None);
        await stream.DisposeAsync();
    }

    /// <summary>The client hangs up after a failed handshake, and sends nothing after its hello.</summary>
    private static async Task AssertClosedWithNothingMoreAsync(NetworkStream stream, CancellationToken cancellationToken) =>
        Assert.Equal(0, await stream.ReadAsync(new byte[1], cancellationToken));
}

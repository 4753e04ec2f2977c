using System.Net;
using FileShare.Client;
using FileShare.Server;

namespace FileShare.Tests.Support;

/// <summary>
/// Per test: a temp folder with a share/ and a downloads/ folder, servers on loopback port 0 and client pools,
/// all stopped and deleted when the test ends.
/// </summary>
public abstract class ServerTestBase : IAsyncLifetime
{
    protected const string Host = "127.0.0.1";

    private readonly List<FileShareServer> _servers = [];
    private readonly List<IDisposable> _disposables = [];

    protected ServerTestBase()
    {
        Temp = new TempDirectory();
        ShareRoot = Temp.Create("share");
        Downloads = Temp.Create("downloads");
    }

    protected TempDirectory Temp { get; }

    protected string ShareRoot { get; }

    protected string Downloads { get; }

    /// <summary>Short enough that a hang fails a test quickly, long enough for a busy 2-core machine.</summary>
    protected static FileShareClientOptions ClientOptions(WireProtocol protocol = WireProtocol.Auto, TimeSpan? readTimeout = null) => new()
    {
        ConnectTimeout = TimeSpan.FromSeconds(5),
        ReadTimeout = readTimeout ?? TimeSpan.FromSeconds(10),
        Protocol = protocol,
    };

    protected FileShareServer StartServer(int port = 0, int maxConnections = 256, TimeSpan? idleTimeout = null, TimeSpan? handshakeTimeout = null, TimeSpan? sendTimeout = null, string? root = null) =>
        StartServer(new FileShareServerOptions
        {
            Port = port,
            Root = root ?? ShareRoot,
            BindAddress = IPAddress.Loopback,
            MaxConnections = maxConnections,
            HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(5),
            IdleTimeout = idleTimeout ?? TimeSpan.FromSeconds(30),
            SendTimeout = sendTimeout ?? TimeSpan.FromSeconds(10),
        });

    /// <summary>Starts a server with exactly these options; stopped when the test ends.</summary>
    protected FileShareServer StartServer(FileShareServerOptions options)
    {
        var server = new FileShareServer(options);
        _servers.Add(server);
        server.Start();
        return server;
    }

    protected FileDownloader NewDownloader(FileShareClientOptions? options = null) => new(Track(new ConnectionPool(options ?? ClientOptions())));

    protected async Task<FileShareConnection> ConnectAsync(FileShareServer server, FileShareClientOptions? options = null) =>
        Track(await FileShareConnection.ConnectAsync(Host, server.Port, options ?? ClientOptions(), CancellationToken.None));

    protected T Track<T>(T disposable) where T : IDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }

    protected string Share(string relative) => Path.Join(ShareRoot, relative);

    protected string Download(string relative) => Path.Join(Downloads, relative);

    protected static string EndpointOf(int port) => $"{Host}:{port}";

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (IDisposable disposable in _disposables)
        {
            disposable.Dispose();
        }

        foreach (FileShareServer server in _servers)
        {
            await server.StopAsync(TimeSpan.Zero);
        }

        Temp.Dispose();
    }
}

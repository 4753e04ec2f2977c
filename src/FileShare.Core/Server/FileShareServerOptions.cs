using System.Net;
using System.Security.Cryptography.X509Certificates;
using FileShare.Protocol;

namespace FileShare.Server;

public sealed class FileShareServerOptions
{
    /// <summary>0 asks the system for a free port; <see cref="FileShareServer.Port"/> then tells which.</summary>
    public int Port { get; init; }

    public required string Root { get; init; }

    /// <summary>
    /// The addresses to listen on, all on one port; empty binds every interface, IPv6 and IPv4 together where the
    /// system allows. With <see cref="Port"/> 0 the first address gets the system's choice and the others that port.
    /// </summary>
    public IReadOnlyList<IPAddress> BindAddresses { get; init; } = [];

    /// <summary>One address to listen on (null: every interface); the only entry of <see cref="BindAddresses"/>.</summary>
    public IPAddress? BindAddress
    {
        get => BindAddresses is [IPAddress only] ? only : null;
        init => BindAddresses = value is null ? [] : [value];
    }

    public int MaxConnections { get; init; } = 256;

    /// <summary>Connections one client address may hold at once, so one client cannot take every slot.</summary>
    public int MaxConnectionsPerAddress { get; init; } = 64;

    public int Backlog { get; init; } = 512;

    /// <summary>Time a new connection has to send its first bytes.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time an open connection may sit between requests.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Time a send may make no progress (a client that stopped reading) before the connection is cut.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>When set, every client must prove it holds this key, and clients of the original (keyless) protocol are refused.</summary>
    public AccessKey? AccessKey { get; init; }

    /// <summary>When set, every connection is TLS with this certificate (it needs its private key); plaintext clients are refused.</summary>
    public X509Certificate2? Certificate { get; init; }
    /// <summary>
    /// Slowest a client may send a request frame or take a range, in bytes per second, before the connection is
    /// dropped (slowloris both ways); 0 turns the floor off. Checked after <see cref="MinDataRateGracePeriod"/>.
    /// </summary>
    public long MinDataRate { get; init; } = 4096;

    /// <summary>How far a client may fall behind <see cref="MinDataRate"/> (and how much credit a fast start buys).</summary>
    public TimeSpan MinDataRateGracePeriod { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest name (UTF-8 bytes) a request may carry; longer ones are refused with LimitExceeded.</summary>
    public int MaxNameBytes { get; init; } = 4096;

    internal DataRate MinRate => new(MinDataRate, MinDataRateGracePeriod);
}

using System.Net;
using System.Net.Sockets;

namespace FileShare.PowerShell.Tests.Support;

public static class Ports
{
    /// <summary>True when a listener can bind <paramref name="address"/> (default 127.0.0.1):<paramref name="port"/> right now, i.e. nobody holds it.</summary>
    public static bool IsFree(int port, IPAddress? address = null)
    {
        var listener = new TcpListener(address ?? IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>True when something accepts TCP connections on <paramref name="address"/> (default 127.0.0.1):<paramref name="port"/>.</summary>
    public static bool Accepts(int port, IPAddress? address = null)
    {
        using var client = new TcpClient((address ?? IPAddress.Loopback).AddressFamily);
        try
        {
            client.Connect(address ?? IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>A port nothing listens on (the system's choice, released at once).</summary>
    public static int Free()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>The first of <paramref name="count"/> consecutive free ports, below the ephemeral range so port-0 binds elsewhere do not race for them.</summary>
    public static int FreeRun(int count)
    {
        for (int attempt = 0; attempt < 200; attempt++)
        {
            int first = Random.Shared.Next(20_000, 30_000);
            if (Enumerable.Range(first, count).All(port => IsFree(port)))
            {
                return first;
            }
        }

        throw new InvalidOperationException($"Found no {count} consecutive free ports.");
    }

    public static void AssertFree(int port, IPAddress? address = null) =>
        Assert.True(IsFree(port, address), $"Port {port} is still bound on {address ?? IPAddress.Loopback}; a listener could not take it.");
}

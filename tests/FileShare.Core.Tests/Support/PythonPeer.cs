using System.Diagnostics;

namespace FileShare.Tests.Support;

/// <summary>
/// Runs one of the Python stand-ins for the original program in tests/peers/. A server peer is read up to its
/// ready line (its port); a client peer is waited for. Dispose kills whatever is still running.
/// </summary>
public sealed class PythonPeer : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);
    private readonly Process _process;
    private readonly Task<string> _stderr;
    private bool _disposed;

    private PythonPeer(Process process)
    {
        _process = process;
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public static string PeersFolder { get; } = FindPeersFolder();

    /// <summary>Starts seed_server.py sharing <paramref name="folder"/> and returns once it printed its port.</summary>
    public static async Task<(PythonPeer Peer, int Port)> StartSeedServerAsync(string folder)
    {
        var peer = new PythonPeer(Start("seed_server.py", folder, "127.0.0.1", "0"));
        try
        {
            Task<string?> line = peer._process.StandardOutput.ReadLineAsync();
            if (await Task.WhenAny(line, Task.Delay(StartTimeout)) != line || await line is not { } ready || !int.TryParse(ready, out int port))
            {
                throw new InvalidOperationException($"seed_server.py did not report a port: {await peer.StopAndReadErrorsAsync()}");
            }

            return (peer, port);
        }
        catch
        {
            peer.Dispose();
            throw;
        }
    }

    /// <summary>Runs seed_client.py to completion and returns its exit code and standard error.</summary>
    public static async Task<(int ExitCode, string Errors)> RunSeedClientAsync(string host, int port, string name, string output)
    {
        using var peer = new PythonPeer(Start("seed_client.py", host, port.ToString(), name, output));
        using var timeout = new CancellationTokenSource(StartTimeout);
        await peer._process.WaitForExitAsync(timeout.Token);
        return (peer._process.ExitCode, await peer._stderr);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }

        _process.WaitForExit(5000);
        _process.Dispose();
    }

    private async Task<string> StopAndReadErrorsAsync()
    {
        Dispose();
        return await _stderr;
    }

    // python3 on the PATH may be a version manager's shim (pyenv's is a bash script that runs pyenv, which runs the
    // interpreter): on a loaded machine that alone took 10 s of the 15 s a peer is given. The interpreter it leads to
    // is asked for once, and each peer starts it directly.
    private static readonly Lazy<string> s_python = new(FindInterpreter);

    private static string FindInterpreter()
    {
        var ask = new ProcessStartInfo("python3", ["-c", "import sys; print(sys.executable)"]) { RedirectStandardOutput = true, UseShellExecute = false };
        using Process python = Process.Start(ask)!;
        string path = python.StandardOutput.ReadToEnd().Trim();
        python.WaitForExit();
        return python.ExitCode == 0 && File.Exists(path) ? path : "python3";
    }

    private static Process Start(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo(s_python.Value)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-u");
        start.ArgumentList.Add(Path.Join(PeersFolder, script));
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start)!;
    }

    private static string FindPeersFolder()
    {
        for (DirectoryInfo? folder = new(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            string candidate = Path.Join(folder.FullName, "tests", "peers");
            if (File.Exists(Path.Join(candidate, "seed_server.py")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"tests/peers not found above {AppContext.BaseDirectory}.");
    }
}

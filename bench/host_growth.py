#!/usr/bin/env python3
"""How much a pwsh hosting ten FileShare servers grows from idle to 200 concurrent downloads, per file size.

Issue 5 asks for under 32 MiB "the same for a 1 MiB and a 4 GiB file". The harness measures the 10 MiB case in
shape 2; this measures the two ends, each on a fresh host (the runtime collects only once gen0's budget is spent, so a
host that served earlier batches would carry their garbage):

- 1 MiB: 200 files (20 per server) with one `Get-RemoteFile -ThrottleLimit 200`, each verified by SHA-256 afterwards;
- 4 GiB: 200 downloads of one 4 GiB file (20 per server) through the Core client into /dev/null, all in flight for
  the given seconds and then cancelled: 800 GiB would not fit anywhere here, and a transfer's memory on the server does
  not depend on how much of the file is still to come (sendfile; no per-byte buffers).

Growth is the host's peak RSS (VmHWM, reset when the host is idle) minus its RSS when idle. A full harness run
(bench/run.py) runs this too and reports both rows; alone:
Usage: python3 bench/host_growth.py --module out/FileShare/0.1.0 --pwsh dotnet <PSHOME>/pwsh.dll [--seconds 8]
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_ports, ps_quote, reset_peak_rss, status_kib, wait_for_port  # noqa: E402

SERVERS = 10
PER_SERVER = 20
MIB = 1 << 20
GIB = 1 << 30


def start_host(pwsh, module, share, ports, env=None):
    script = ("$ErrorActionPreference = 'Stop'; "
              f"Import-Module {ps_quote(os.path.join(module, 'FileShare.psd1'))}; "
              f"Start-FileShareServer -Port {','.join(map(str, ports))} -Path {ps_quote(share)} -BindAddress 127.0.0.1 "
              f"-MaxConnections 1100 -MaxConnectionsPerAddress 1100 | Out-Null; "
              "[Console]::Out.WriteLine('ready'); [Console]::Out.Flush(); [Console]::In.ReadLine() | Out-Null")
    host = subprocess.Popen(pwsh + ["-NoProfile", "-NonInteractive", "-c", script],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    if host.stdout.readline().strip() != "ready":
        raise RuntimeError("the server host did not start")
    for port in ports:
        wait_for_port(port)
    return host


def settle(pid, seconds=3.0):
    """RSS once the host has been quiet for a moment (its start-up JIT and module loading done)."""
    time.sleep(seconds)
    return status_kib(pid, "VmRSS")


def one_mib(pwsh, module, work, ports):
    share = os.path.join(work, "share-1mib")
    os.makedirs(share)
    source = os.path.join(share, "source.bin")
    with open(source, "wb") as file:
        file.write(os.urandom(MIB))
    expected = hashlib.sha256(open(source, "rb").read()).hexdigest()
    names = [f"f{index:03}.bin" for index in range(SERVERS * PER_SERVER)]
    for name in names:
        os.link(source, os.path.join(share, name))
    out = os.path.join(work, "out-1mib")
    items = ", ".join(f"[pscustomobject]@{{Name='{name}'; ComputerName='127.0.0.1'; Port={ports[index % SERVERS]}}}"
                      for index, name in enumerate(names))
    client = (f"$ErrorActionPreference = 'Stop'; Import-Module {ps_quote(os.path.join(module, 'FileShare.psd1'))}; $ProgressPreference = 'SilentlyContinue'; "
              f"@({items}) | Get-RemoteFile -ThrottleLimit 200 -Destination {ps_quote(out)} | Out-Null")
    idle, peak, _ = measure(pwsh, module, share, ports, client)
    for name in names:
        with open(os.path.join(out, name), "rb") as file:
            if hashlib.sha256(file.read()).hexdigest() != expected:
                raise RuntimeError(f"{name} arrived damaged")
    return idle, peak, f"{len(names)} files verified by SHA-256"


def four_gib(pwsh, module, work, ports, seconds):
    share = os.path.join(work, "share-4gib")
    os.makedirs(share)
    with open(os.path.join(share, "big.bin"), "wb") as file:
        file.truncate(4 * GIB)  # sparse: tmpfs serves its holes without holding 4 GiB
    core = os.path.join(module, "bin", "FileShare.Core.dll")
    client = f"""
$ErrorActionPreference = 'Stop'
Add-Type -Path {ps_quote(core)}
$stop = [Threading.CancellationTokenSource]::new([TimeSpan]::FromSeconds({seconds}))
$options = [FileShare.Client.FileShareClientOptions]::new()
$sink = [IO.File]::OpenHandle('/dev/null', [IO.FileMode]::Open, [IO.FileAccess]::Write)
$received = [FileShare.Client.TransferProgress]::new()
$ports = @({', '.join(map(str, ports))})
# Every request is sent before any body is taken, so all of them are in flight at once from the first receive on.
$connections = foreach ($index in 0..{SERVERS * PER_SERVER - 1}) {{
    $connection = [FileShare.Client.FileShareConnection]::ConnectAsync('127.0.0.1', $ports[$index % $ports.Count], $options, $stop.Token).GetAwaiter().GetResult()
    $null = $connection.RequestRangeAsync('big.bin', 0, -1, $stop.Token).GetAwaiter().GetResult()
    $connection
}}
$downloads = foreach ($connection in $connections) {{
    [pscustomobject]@{{ Connection = $connection; Task = $connection.ReceiveRangeAsync('big.bin', $sink, 0, $received, $stop.Token) }}
}}
$running = @($downloads | Where-Object {{ -not $_.Task.IsCompleted }}).Count
try {{ [Threading.Tasks.Task]::WaitAll([Threading.Tasks.Task[]]@($downloads.Task)) }} catch {{ }}
$downloads.Connection | ForEach-Object Dispose
$sink.Dispose()
if ($running -ne {SERVERS * PER_SERVER}) {{ throw "only $running of {SERVERS * PER_SERVER} downloads were in flight at once" }}
'{{0:n1}}' -f ($received.BytesReceived / 1GB)
"""
    idle, peak, gib = measure(pwsh, module, share, ports, client)
    return idle, peak, f"{SERVERS * PER_SERVER} downloads in flight for {seconds} s, {gib} GiB received, then cancelled"


def measure(pwsh, module, share, ports, client_script):
    host = start_host(pwsh, module, share, ports)
    try:
        idle = settle(host.pid)
        reset_peak_rss(host.pid)
        output = subprocess.run(pwsh + ["-NoProfile", "-NonInteractive", "-c", client_script], check=True,
                                stdout=subprocess.PIPE, text=True).stdout.strip()
        peak = status_kib(host.pid, "VmHWM")
        return idle, peak, output
    finally:
        host.stdin.close()
        host.wait(30)


def measure_sizes(pwsh, module, seconds=8):
    """Both sizes, each on a fresh host: a list of {"file", "idle_kib", "peak_kib", "what"}."""
    work = tempfile.mkdtemp(prefix="fileshare-host-growth-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        results = []
        for label, run in (("1 MiB", lambda ports: one_mib(pwsh, module, work, ports)),
                           ("4 GiB", lambda ports: four_gib(pwsh, module, work, ports, seconds))):
            idle, peak, what = run(free_ports(SERVERS))
            results.append({"file": label, "idle_kib": idle, "peak_kib": peak, "what": what})
        return results
    finally:
        subprocess.run(["rm", "-rf", work], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="the built module folder (out/FileShare/<version>)")
    parser.add_argument("--pwsh", nargs="+", default=["pwsh"], help="how to start pwsh")
    parser.add_argument("--seconds", type=int, default=8, help="how long the 4 GiB downloads stay in flight")
    args = parser.parse_args()
    for result in measure_sizes(args.pwsh, os.path.abspath(args.module), args.seconds):
        print(f"{result['file']}: host idle {result['idle_kib'] / 1024:.1f} MiB, peak {result['peak_kib'] / 1024:.1f} MiB, "
              f"growth {(result['peak_kib'] - result['idle_kib']) / 1024:.1f} MiB ({result['what']})", flush=True)


if __name__ == "__main__":
    main()

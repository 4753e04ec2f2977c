#!/usr/bin/env python3
"""Managed bytes the pwsh hosting ten FileShare servers allocates per download, in the steady state.

The host is a warm pwsh (bench/worker.ps1) running ten servers as jobs; a second warm pwsh downloads batch after
batch from them. Around each batch the host reports GC.GetTotalAllocatedBytes (precise), its collection counts and
RSS; the cost of asking is measured first and taken off. The first batches warm up (tiered JIT, pools) and are not
counted. Shapes:

- a: 200 downloads of 10 MiB at once (20 per server), one Get-RemoteFile -ThrottleLimit 200, as the harness's shape 2;
- b: 2,000 files of 4 KiB one after another from one server (one connection, requests asked ahead), as shape 3.

Usage: python3 bench/alloc_per_download.py --module out/FileShare/0.1.0 --pwsh dotnet <PSHOME>/pwsh.dll
       [--shape a|b] [--warm 3] [--batches 8]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Worker, free_ports, ps_quote  # noqa: E402

STATS = ("$p = [Diagnostics.Process]::GetCurrentProcess(); "
         "\"$([GC]::GetTotalAllocatedBytes($true)) $([GC]::CollectionCount(0)) $([GC]::CollectionCount(2)) $($p.WorkingSet64)\"")


def make_share(share):
    os.makedirs(os.path.join(share, "conc"))
    os.makedirs(os.path.join(share, "small"))
    source = os.path.join(share, "c.bin")
    with open(source, "wb") as file:
        file.write(os.urandom(10 << 20))
    for server in range(10):
        for client in range(20):
            os.link(source, os.path.join(share, "conc", f"s{server:02d}-c{client:03d}.bin"))
    for i in range(2000):
        with open(os.path.join(share, "small", f"f{i:04d}.bin"), "wb") as file:
            file.write(os.urandom(4096))


def batch_script(shape, ports, out):
    clear = f"$ProgressPreference = 'SilentlyContinue'; Remove-Item -Recurse -Force {ps_quote(out)} -ErrorAction Ignore; "
    if shape == "a":
        items = ",".join(f"[pscustomobject]@{{Name='conc/s{s:02d}-c{c:03d}.bin';ComputerName='127.0.0.1';Port={ports[s]}}}"
                         for s in range(10) for c in range(20))
        return clear + f"@({items}) | Get-RemoteFile -ThrottleLimit 200 -Destination {ps_quote(out)}", 200
    names = ",".join(f"'small/f{i:04d}.bin'" for i in range(2000))
    return clear + (f"@({names}) | ForEach-Object {{ [pscustomobject]@{{Name=$_;ComputerName='127.0.0.1';Port={ports[0]}}} }} | "
                    f"Get-RemoteFile -ThrottleLimit 1 -Destination {ps_quote(out)}"), 2000


def host_stats(host):
    allocated, gen0, gen2, rss = map(int, host.run(STATS)["output"][0].split())
    return allocated, gen0, gen2, rss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--pwsh", nargs="+", required=True)
    parser.add_argument("--shape", choices=["a", "b"], default="a")
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="fileshare-alloc-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    context = types.SimpleNamespace(work=work, pwsh=args.pwsh, bench=os.path.dirname(os.path.abspath(__file__)),
                                    module_manifest=os.path.join(os.path.abspath(args.module), "FileShare.psd1"))
    share, out = os.path.join(work, "share"), os.path.join(work, "out")
    make_share(share)
    ports = free_ports(10)
    host, client = Worker(context, "host"), Worker(context, "client")
    try:
        host.run(f"Start-FileShareServer -Port {','.join(map(str, ports))} -Path {ps_quote(share)} -BindAddress 127.0.0.1 "
                 "-MaxConnections 1100 -MaxConnectionsPerAddress 1100 | Out-Null")
        first, second, third = host_stats(host)[0], host_stats(host)[0], host_stats(host)[0]
        asking = ((second - first) + (third - second)) / 2
        script, downloads = batch_script(args.shape, ports, out)
        measured = []
        for batch in range(args.warm + args.batches):
            before = host_stats(host)
            seconds = client.run(script)["seconds"]
            after = host_stats(host)
            per_download = (after[0] - before[0] - asking) / downloads
            if batch >= args.warm:
                measured.append(per_download)
            print(f"{'measured' if batch >= args.warm else 'warm-up '} batch {batch}: {seconds:5.2f} s, "
                  f"{per_download:7.0f} B per download, host collections gen0 {after[1]} gen2 {after[2]}, RSS {after[3] >> 20} MiB",
                  flush=True)
        print(f"shape {args.shape}: median {statistics.median(measured):.0f} B per download "
              f"({min(measured):.0f}-{max(measured):.0f}) over {len(measured)} batches")
    finally:
        client.close()
        host.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a FileShare server's CPU goes per GiB sent, by thread, beside nginx's for the same file.

One 1 GiB file on tmpfs; a pwsh hosting a FileShare server as a job (as the harness does) and one warm client pwsh
downloading it again and again; only the last downloads are measured, so start-up and most of the tiered JIT stay out.
The host's CPU is read from /proc per thread (threads that exited meanwhile count in the process total only). Then
nginx (sendfile on, as in the harness) serves the same file to curl, measured the same way. Each client's CPU over the
measured downloads is printed too: on loopback part of one side's TCP work runs in the other's context, so the two
figures move together. `--env NAME=VALUE` starts
the FileShare host with a runtime setting, to see what a process-wide knob of the host would change.

Usage: python3 bench/server_cpu.py --module out/FileShare/0.1.0 --pwsh dotnet <PSHOME>/pwsh.dll
       [--warm-up 10] [--measured 6] [--env DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1]
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host_growth import start_host  # noqa: E402
from run import free_ports, nginx_workers, ps_quote, wait_for_port, write_nginx_conf  # noqa: E402

GIB = 1 << 30
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_thread(pid):
    """CPU seconds (user + system) of each live thread of a process, summed by thread name."""
    seconds = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue  # the thread ended while being read
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        seconds[name] += (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


def process_cpu(pids):
    total = 0.0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def fileshare(args, work, share):
    port = free_ports(1)[0]
    env = dict(os.environ, **dict(setting.split("=", 1) for setting in args.env))
    pwsh = args.pwsh
    host = start_host(pwsh, args.module, share, [port], env)
    out = os.path.join(work, "out")
    download = (f"Remove-Item {ps_quote(out)} -Recurse -Force -ErrorAction Ignore; "
                f"Get-RemoteFile big.bin -ComputerName 127.0.0.1 -Port {port} -Destination {ps_quote(out)}")
    client = subprocess.Popen(pwsh + ["-NoProfile", "-NonInteractive", "-c",
                                      f"Import-Module {ps_quote(os.path.join(args.module, 'FileShare.psd1'))}; "
                                      "$ProgressPreference = 'SilentlyContinue'; "
                                      f"foreach ($i in 1..{args.warm_up}) {{ {download} }}; "
                                      "[Console]::Out.WriteLine('warm'); [Console]::Out.Flush(); [Console]::In.ReadLine() | Out-Null; "
                                      f"foreach ($i in 1..{args.measured}) {{ {download} }}; "
                                      "[Console]::Out.WriteLine('done'); [Console]::Out.Flush(); [Console]::In.ReadLine() | Out-Null"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if client.stdout.readline().strip() != "warm":
            raise RuntimeError("the client did not warm up")
        threads_before, total_before = cpu_by_thread(host.pid), process_cpu([host.pid])
        client_before = process_cpu([client.pid])
        client.stdin.write("\n")
        client.stdin.flush()
        # The client's CPU is read while it still exists: once it has written its last line and waits to be let go.
        if client.stdout.readline().strip() != "done":
            raise RuntimeError("a measured download failed")
        threads_after, total_after = cpu_by_thread(host.pid), process_cpu([host.pid])
        client_cpu = (process_cpu([client.pid]) - client_before) / args.measured
        client.stdin.write("\n")
        client.stdin.flush()
        client.wait()
    finally:
        client.kill()
        host.kill()
        host.wait()
    by_thread = {name: (threads_after[name] - threads_before.get(name, 0)) / args.measured for name in threads_after}
    return (total_after - total_before) / args.measured, by_thread, client_cpu


def nginx(args, work, data):
    folder = os.path.join(work, "nginx")
    port = free_ports(1)[0]
    write_nginx_conf(folder, [port], data)
    subprocess.run(["nginx", "-p", folder, "-c", "nginx.conf"], check=True)
    try:
        wait_for_port(port)
        master = int(open(os.path.join(folder, "nginx.pid")).read())
        out = os.path.join(work, "nginx.out")

        def download():
            subprocess.run(["curl", "-sf", "-o", out, f"http://127.0.0.1:{port}/big.bin"], check=True)
            os.remove(out)
        for _ in range(args.warm_up):
            download()
        # The workers are listed only now: the master listens before it has forked them.
        pids = [master] + nginx_workers(master)
        before, curl_before = process_cpu(pids), os.times()
        for _ in range(args.measured):
            download()
        curl_after = os.times()
        curl = (curl_after.children_user + curl_after.children_system - curl_before.children_user - curl_before.children_system) / args.measured
        return (process_cpu(pids) - before) / args.measured, curl
    finally:
        subprocess.run(["nginx", "-p", folder, "-c", "nginx.conf", "-s", "stop"], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="the built module folder, e.g. out/FileShare/0.1.0")
    parser.add_argument("--pwsh", nargs="+", required=True, help="how to run pwsh, e.g. dotnet <PSHOME>/pwsh.dll")
    parser.add_argument("--warm-up", type=int, default=10)
    parser.add_argument("--measured", type=int, default=6)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the FileShare host (repeatable)")
    args = parser.parse_args()
    args.module = os.path.abspath(args.module)
    work = tempfile.mkdtemp(prefix="fileshare-server-cpu.", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.chmod(work, 0o755)  # nginx workers run unprivileged
    try:
        share = os.path.join(work, "share")
        os.makedirs(share, mode=0o755)
        with open(os.path.join(share, "big.bin"), "wb") as file:
            for _ in range(GIB >> 24):
                file.write(os.urandom(1 << 24))
        os.chmod(os.path.join(share, "big.bin"), 0o644)
        total, by_thread, client_cpu = fileshare(args, work, share)
        print(f"FileShare host{' (' + ' '.join(args.env) + ')' if args.env else ''}: {total:.3f} s CPU per GiB; its client: {client_cpu:.3f} s")
        for name, seconds in sorted(by_thread.items(), key=lambda item: -item[1]):
            if seconds >= 0.005:
                print(f"  {name:<16} {seconds:.3f} s")
        print(f"  (threads that ended meanwhile) {total - sum(by_thread.values()):.3f} s")
        if shutil.which("nginx") and shutil.which("curl"):
            server_cpu, curl_cpu = nginx(args, work, share)
            print(f"nginx + curl: {server_cpu:.3f} s CPU per GiB (nginx's processes); curl: {curl_cpu:.3f} s")
        else:
            print("nginx or curl missing: no comparison")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

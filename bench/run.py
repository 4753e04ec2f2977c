#!/usr/bin/env python3
"""FileShare benchmark harness: FileShare against the tools people would pick instead, same machine, same run.

Usage: run.py --repo DIR --module DIR --pwsh CMD... [--quick] [--rounds N] [--no-docs]

Entry point is `./build.ps1 Bench [-Quick]`, which builds the module and passes the arguments. The harness:
- puts data and downloads on tmpfs (/dev/shm) and says so when it cannot;
- installs missing peers with apt-get (nginx-light, curl, aria2, iperf3), and python3-matplotlib for the chart;
- runs every variant of a shape interleaved (the order rotates each round), after two untimed warm-up rounds;
- measures wall time, client and server CPU seconds (/proc/PID/stat deltas, or wait4 rusage for child processes)
  and peak RSS (VmHWM after resetting it through /proc/PID/clear_refs, or rusage ru_maxrss);
- verifies every download by SHA-256 outside the timed part, then deletes it before the next round;
- writes out/bench/results.json and results.csv, a chart (docs/benchmarks.png) and the table between the markers in
  docs/benchmarks.md.
"""
import argparse
import csv
import hashlib
import importlib.util
import json
import os
import platform
import pty
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SHAPES = ("cold", "single", "concurrent", "small", "listing", "hash", "scaling")
MIB = 1 << 20
GIB = 1 << 30
# A warm pwsh keeps recompiling hot code (its own and ours) for several runs; the cold shape measures the first run.
WARMUP_ROUNDS = 2
# Code run once per command (PowerShell's command lookup and binding, the cmdlet's set-up) or once per request goes
# through the runtime's tiers (ReadyToRun, an instrumented tier for dynamic PGO, tier 1) over many runs. Measured with
# System.Runtime.JitInfo, 2026-11-26: a warm client pwsh still jitted 767, 631, 252, 275, 148, 137, 55, 29 methods
# (384, 481, 129, 346, 79, 153, 60, 17 ms) in its 2nd to 9th 1 GiB Get-RemoteFile; a server host's JIT time grew
# 2.5 s over its first ten rounds of 2,000 small files and 0.5 s over the next ten. The single-file and small-file
# shapes, whose rounds are short, therefore warm up longer, every variant alike, to measure the steady state.
LONG_WARMUP_ROUNDS = 8
TICKS = os.sysconf("SC_CLK_TCK")
BEGIN_MARKER = "<!-- bench:begin (written by ./build.ps1 Bench; edits inside are replaced) -->"
END_MARKER = "<!-- bench:end -->"
SERIES_BEGIN_MARKER = "<!-- bench-series:begin (written by ./build.ps1 Bench -Runs N; edits inside are replaced) -->"
SERIES_END_MARKER = "<!-- bench-series:end -->"


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- measuring processes

def cpu_seconds(pid):
    """User + system CPU of a live process (all its threads), in seconds; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def reset_peak_rss(pid):
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+), so each run gets its own peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


class Meter:
    """CPU and peak RSS of a set of long-lived processes over one run."""

    def __init__(self, pids):
        self.pids = list(pids)

    def start(self):
        for pid in self.pids:
            reset_peak_rss(pid)
        self.cpu = sum(cpu_seconds(pid) for pid in self.pids)
        self.rss = sum(status_kib(pid, "VmRSS") for pid in self.pids)

    def stop(self):
        return {"cpu": sum(cpu_seconds(pid) for pid in self.pids) - self.cpu,
                "peak_kib": sum(status_kib(pid, "VmHWM") for pid in self.pids),
                "start_kib": self.rss}


TIME = "/usr/bin/time"


def run_processes(argvs, cwd=None, env=None):
    """Starts all argvs at once and waits for all: wall seconds, summed CPU, summed peak RSS (they run together).

    Each command runs under GNU time, whose rusage is the command's own: a child forked straight from this Python
    would report Python's resident size as its peak (ru_maxrss counts the pages shared before exec).
    """
    folder = tempfile.mkdtemp(prefix="rusage-")
    started = time.perf_counter()
    children = []
    for index, argv in enumerate(argvs):
        usage_path = os.path.join(folder, str(index))
        children.append((subprocess.Popen([TIME, "-f", "%U %S %M", "-o", usage_path, *argv], cwd=cwd, env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
                         usage_path))
    failures = []
    for child, _ in children:
        child.wait()
        if child.returncode != 0:
            failures.append(f"{child.args[5]} exited {child.returncode}: {child.stderr.read().decode(errors='replace')[:300]}")
        child.stderr.close()
    seconds = time.perf_counter() - started
    cpu, peak = 0.0, 0
    for _, usage_path in children:
        user, system, max_kib = open(usage_path).read().split()[-3:]
        cpu += float(user) + float(system)
        peak += int(max_kib)
    shutil.rmtree(folder, ignore_errors=True)
    if failures:
        raise RuntimeError(failures[0])
    return seconds, cpu, peak


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_ports(count):
    ports = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


# What nginx's "worker_processes auto" starts: one per CPU. Written out so the harness knows how many to wait for.
NGINX_WORKERS = os.cpu_count() or 1


def write_nginx_conf(folder, ports, root):
    """The nginx every run measures against: sendfile on, no access log, JSON autoindex under /listing/."""
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    listens = "\n".join(f"    listen 127.0.0.1:{port};" for port in ports)
    with open(os.path.join(folder, "nginx.conf"), "w") as conf:
        conf.write(f"""
worker_processes {NGINX_WORKERS};
daemon on;
error_log {folder}/logs/error.log;
pid {folder}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server {{
{listens}
    root {root};
    location /listing/ {{ autoindex on; autoindex_format json; }}
  }}
}}
""")


def nginx_workers(master, timeout=10):
    """Every worker of a started nginx. They fork one by one after the master is up: taking the first one seen left
    the others out of nginx's CPU figures (one run read 0 s for a whole 1 GiB, served by the worker not counted)."""
    deadline = time.monotonic() + timeout
    while True:
        workers = [int(pid) for pid in open(f"/proc/{master}/task/{master}/children").read().split()]
        if len(workers) >= NGINX_WORKERS:
            return workers
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx started {len(workers)} of its {NGINX_WORKERS} workers within {timeout} s")
        time.sleep(0.05)


def wait_for_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# ---------------------------------------------------------------- warm pwsh sessions

class Worker:
    """A pwsh running bench/worker.ps1: scripts go in through one fifo, timed answers come back through another.

    With a terminal (terminal=True) the pwsh's console is a pty whose cursor-position queries are answered, so
    progress is rendered exactly as at an interactive console.
    """

    def __init__(self, harness, name, terminal=False):
        self.name = name
        folder = tempfile.mkdtemp(prefix=f"worker-{name}-", dir=harness.work)
        self.commands_path = os.path.join(folder, "commands")
        self.answers_path = os.path.join(folder, "answers")
        os.mkfifo(self.commands_path)
        os.mkfifo(self.answers_path)
        argv = harness.pwsh + ["-NoProfile", "-NonInteractive", "-File", os.path.join(harness.bench, "worker.ps1"),
                               "-CommandPipe", self.commands_path, "-AnswerPipe", self.answers_path,
                               "-ModulePath", harness.module_manifest]
        if name.startswith("pwsh-http"):
            argv.append("-LoadHttpClientPeer")
        self.terminal_bytes = 0
        if terminal:
            argv.append("-ShowProgress")
            pid, self.master = pty.fork()
            if pid == 0:
                try:
                    os.execvp(argv[0], argv)
                finally:
                    os._exit(127)
            self.pid = pid
            threading.Thread(target=self._drain_terminal, daemon=True).start()
        else:
            self.log_path = os.path.join(folder, "output.log")
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(self.log_path, "wb"),
                                            stderr=subprocess.STDOUT)
            self.pid = self.process.pid
        self.answers = os.open(self.answers_path, os.O_RDONLY | os.O_NONBLOCK)
        self.pending = b""
        ready = self._read_answer(timeout=120)
        if not ready.get("ready"):
            raise RuntimeError(f"worker {name} did not start: {ready}")
        self.commands = open(self.commands_path, "w")

    def _drain_terminal(self):
        seen = b""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.terminal_bytes += len(data)
            seen = seen[-8:] + data
            for _ in range(seen.count(b"\x1b[6n")):
                os.write(self.master, b"\x1b[1;1R")
            seen = seen.replace(b"\x1b[6n", b"")

    def _output_tail(self):
        if not hasattr(self, "log_path"):
            return "(it ran in a terminal)"
        with open(self.log_path, "rb") as output:
            return output.read()[-2000:].decode(errors="replace")

    def _alive(self):
        try:
            waited, _ = os.waitpid(self.pid, os.WNOHANG)
            return waited == 0
        except ChildProcessError:
            return False

    def _read_answer(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name}: no answer in {timeout} s")
            ready, _, _ = select.select([self.answers], [], [], 0.2)
            data = os.read(self.answers, 1 << 20) if ready else b""
            if data:
                self.pending += data
            else:
                if not self._alive():
                    raise RuntimeError(f"worker {self.name} exited: {self._output_tail()}")
                time.sleep(0.02)
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line.decode("utf-8-sig"))

    def run(self, script, timeout=1800):
        self.commands.write(json.dumps({"script": script}) + "\n")
        self.commands.flush()
        answer = self._read_answer(timeout)
        if answer["error"]:
            raise RuntimeError(f"worker {self.name}: {answer['error']}")
        return answer

    def close(self):
        try:
            self.run("Get-Job | Remove-Job -Force", timeout=60)
            self.commands.close()
            deadline = time.monotonic() + 20
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        except Exception:
            pass
        if self._alive():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.answers)


def ps_quote(text):
    return "'" + str(text).replace("'", "''") + "'"


def ps_array(items):
    return "@(" + ",".join(ps_quote(item) for item in items) + ")"


# ---------------------------------------------------------------- the run

class Variant:
    """One tool doing one shape. run() does the timed work and returns seconds plus client figures."""

    def __init__(self, name, tool, run, server_pids=(), verify=None, units=None, note=""):
        self.name, self.tool, self.run, self.server_pids = name, tool, run, list(server_pids)
        self.verify, self.units, self.note = verify, units or {}, note


class Harness:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.repo = os.path.abspath(args.repo)
        self.bench = os.path.join(self.repo, "bench")
        self.module_dir = os.path.abspath(args.module)
        self.module_manifest = os.path.join(self.module_dir, "FileShare.psd1")
        self.pwsh = args.pwsh
        self.rounds = args.rounds or (1 if self.quick else 5)
        self.shapes = set(args.shapes.split(","))
        self.results = []
        self.facts = {}
        self.cleanups = []
        self.workers = {}
        base = "/dev/shm"
        self.tmpfs = os.path.isdir(base) and os.access(base, os.W_OK) and self._is_tmpfs(base)
        if not self.tmpfs:
            base = tempfile.gettempdir()
            log(f"no writable tmpfs at /dev/shm; data and downloads go to {base} (disk), so figures include the disk")
        self.work = tempfile.mkdtemp(prefix="fileshare-bench-", dir=base)
        os.chmod(self.work, 0o755)  # nginx workers run unprivileged
        self.data = os.path.join(self.work, "data")
        self.out = os.path.join(self.work, "out")
        os.makedirs(self.data)
        os.makedirs(self.out)
        self.hashes = {}

    @staticmethod
    def _is_tmpfs(path):
        with open("/proc/mounts") as mounts:
            best = ("", "")
            for line in mounts:
                _, mount_point, fs_type = line.split()[:3]
                if path.startswith(mount_point) and len(mount_point) > len(best[0]):
                    best = (mount_point, fs_type)
        return best[1] == "tmpfs"

    # ---------------------------------------------------------------- data

    def make_file(self, relative, size, random=True):
        path = os.path.join(self.data, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "wb") as file, open("/dev/urandom", "rb") as source:
            remaining = size
            while remaining:
                chunk = source.read(min(remaining, 16 * MIB)) if random else bytes(min(remaining, 16 * MIB))
                file.write(chunk)
                digest.update(chunk)
                remaining -= len(chunk)
        os.chmod(path, 0o644)
        self.hashes[relative] = digest.hexdigest()
        return path

    def make_small_files(self, folder, count, size):
        os.makedirs(os.path.join(self.data, folder), exist_ok=True)
        names = []
        with open("/dev/urandom", "rb") as source:
            for i in range(count):
                name = f"f{i:06d}.bin"
                relative = f"{folder}/{name}"
                chunk = source.read(size)
                with open(os.path.join(self.data, relative), "wb") as file:
                    file.write(chunk)
                self.hashes[relative] = hashlib.sha256(chunk).hexdigest()
                names.append(name)
        return names

    def link(self, relative, target_relative):
        path = os.path.join(self.data, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.link(os.path.join(self.data, target_relative), path)
        self.hashes[relative] = self.hashes[target_relative]

    def verify(self, pairs):
        """pairs: (downloaded path, relative source). Raises on the first mismatch."""
        for path, relative in pairs:
            digest = hashlib.sha256()
            with open(path, "rb") as file:
                while chunk := file.read(16 * MIB):
                    digest.update(chunk)
            if digest.hexdigest() != self.hashes[relative]:
                raise RuntimeError(f"{path}: SHA-256 differs from {relative}")

    def fresh_out(self, name):
        path = os.path.join(self.out, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def clear_out(self):
        for entry in os.listdir(self.out):
            shutil.rmtree(os.path.join(self.out, entry), ignore_errors=True)

    # ---------------------------------------------------------------- peers

    def ensure_packages(self):
        wanted = {"nginx": "nginx-light", "curl": "curl", "aria2c": "aria2", "iperf3": "iperf3", "time": "time"}
        missing = [package for command, package in wanted.items() if not shutil.which(command)]
        # For the chart only; Debian's package serves Debian's own python3 (./build.ps1 Bench runs that one).
        if importlib.util.find_spec("matplotlib") is None and os.path.realpath(sys.executable).startswith("/usr/bin/"):
            missing.append("python3-matplotlib")
        if missing:
            log(f"installing {' '.join(missing)} with apt-get")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=False, stdout=subprocess.DEVNULL)
        self.available = {command: bool(shutil.which(command)) for command in wanted}
        if not self.available["time"]:
            raise RuntimeError("GNU time (/usr/bin/time) is needed to measure child processes; apt-get install time")
        for command, present in self.available.items():
            if not present:
                log(f"{command} is missing and could not be installed; its variants are skipped")

    def start_nginx(self, ports):
        folder = os.path.join(self.work, "nginx")
        write_nginx_conf(folder, ports, self.data)
        subprocess.run(["nginx", "-p", folder, "-c", "nginx.conf"], check=True)
        self.cleanups.append(lambda: subprocess.run(["nginx", "-p", folder, "-c", "nginx.conf", "-s", "stop"], check=False))
        wait_for_port(ports[0])
        master = int(open(os.path.join(folder, "nginx.pid")).read())
        self.nginx_pids = [master] + nginx_workers(master)
        self.nginx_ports = ports

    def start_process(self, argv, port=None):
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.cleanups.append(stop)
        if port:
            wait_for_port(port)
        return process

    def worker(self, name, terminal=False):
        if name not in self.workers:
            log(f"starting pwsh worker '{name}'{' in a pty (progress rendered)' if terminal else ''}")
            self.workers[name] = Worker(self, name, terminal)
        return self.workers[name]

    def stop_worker(self, name):
        worker = self.workers.pop(name, None)
        if worker:
            worker.close()

    def fileshare_host(self, name, ports, path):
        """A pwsh hosting FileShare servers as jobs; the 'server' process of every FileShare row."""
        host = self.worker(name)
        host.run(f"Start-FileShareServer -Port {','.join(map(str, ports))} -Path {ps_quote(path)} -BindAddress 127.0.0.1 "
                 f"-MaxConnections 1100 -MaxConnectionsPerAddress 1100 | Out-Null")
        for port in ports:
            wait_for_port(port)
        return host

    # ---------------------------------------------------------------- measuring a shape

    def measure(self, shape, variants, rounds, warmup=True, warmup_rounds=WARMUP_ROUNDS):
        variants = [variant for variant in variants if variant is not None]
        warmup_rounds = warmup_rounds if warmup else 0
        log(f"shape '{shape}': {len(variants)} variants x {rounds} rounds{f' + {warmup_rounds} warm-up' if warmup_rounds else ''}")
        for index, variant in enumerate(variants):
            variant.units = dict(variant.units, order=index)  # variants of a shape may share one units dict
        for round_number in range(1 - warmup_rounds, rounds + 1):
            # A new order each round, the same in every run: with a rotation each variant always followed the same
            # one, and FileShare's 1 GiB row (always right after iperf3's) ran 0.6 s slower in three rounds of five.
            order = list(variants)
            random.Random(round_number).shuffle(order)
            for variant in order:
                self.clear_out()
                meter = Meter(variant.server_pids)
                meter.start()
                try:
                    figures = variant.run()
                except Exception as error:  # a failed tool is a row with the error, not a dead run
                    log(f"  {variant.name}: FAILED: {error}")
                    self.results.append({"shape": shape, "variant": variant.name, "tool": variant.tool,
                                         "round": round_number, "error": str(error)[:500], **variant.units})
                    continue
                server = meter.stop()
                if variant.verify:
                    variant.verify()
                if round_number <= 0:
                    continue
                record = {"shape": shape, "variant": variant.name, "tool": variant.tool, "round": round_number,
                          "seconds": figures["seconds"], "client_cpu": figures.get("cpu"),
                          "client_peak_kib": figures.get("peak_kib"), "client_start_kib": figures.get("start_kib"),
                          "server_cpu": server["cpu"] if variant.server_pids else None,
                          "server_peak_kib": server["peak_kib"] if variant.server_pids else None,
                          "server_start_kib": server["start_kib"] if variant.server_pids else None,
                          "note": variant.note, **variant.units, **figures.get("extra", {})}
                self.results.append(record)
                log(f"  round {round_number} {variant.name}: {figures['seconds']:.3f} s")
        self.clear_out()

    def in_worker(self, worker, script):
        """Runs script in a warm pwsh; wall time from its own stopwatch, CPU and peak RSS from /proc."""
        def run():
            meter = Meter([worker.pid])
            meter.start()
            answer = worker.run(script)
            client = meter.stop()
            return {"seconds": answer["seconds"], "cpu": client["cpu"], "peak_kib": client["peak_kib"],
                    "start_kib": client["start_kib"], "output": answer["output"]}
        return run

    def in_processes(self, make_argvs, cwd=None, env=None):
        def run():
            seconds, cpu, peak = run_processes(make_argvs(), cwd=cwd, env=env)
            return {"seconds": seconds, "cpu": cpu, "peak_kib": peak}
        return run

    # ---------------------------------------------------------------- shapes

    def shape_single(self, label, relative, rounds, peers=True, warmup=True):
        size = os.path.getsize(os.path.join(self.data, relative))
        units = {"bytes": size, "files": 1}
        name = os.path.basename(relative)
        nginx_url = f"http://127.0.0.1:{self.nginx_ports[0]}/{relative}"
        fs_port = self.single_port
        out = lambda tool: os.path.join(self.out, tool)  # noqa: E731
        fs = self.worker("fileshare-client")
        http = self.worker("pwsh-http")

        def verify(tool):
            # FileShare keeps the remote folder under the destination; the HTTP tools write the bare name.
            downloaded = relative if tool.startswith("fs") else name
            return lambda: self.verify([(os.path.join(out(tool), downloaded), relative)])

        def prepare(tool):
            os.makedirs(out(tool), exist_ok=True)
            return os.path.join(out(tool), name)

        def fileshare(worker, tool, extra=""):
            script = (f"Get-RemoteFile {ps_quote(relative)} -ComputerName 127.0.0.1 -Port {fs_port} "
                      f"-Destination {ps_quote(out(tool))}{extra}")
            return self.in_worker(worker, script)

        variants = [Variant("FileShare Get-RemoteFile", "FileShare", fileshare(fs, "fs"), [self.single_host.pid],
                            verify("fs"), units)]
        variants.append(Variant("FileShare to nowhere (Core API, no hashing)", "FileShare (to nowhere)",
                                self.in_worker(fs, self.nowhere_script(fs_port, relative)), [self.single_host.pid],
                                None, units, "no file written, no SHA-256: the protocol's ceiling on this machine"))
        if peers:
            # Both progress rows run in one pty worker, so the difference is the progress alone, not another process.
            progress_worker = self.worker("fileshare-progress", terminal=True)
            variants.append(Variant("FileShare, progress on (pty)", "FileShare (progress on)",
                                    fileshare(progress_worker, "fsp"), [self.single_host.pid], verify("fsp"), units))
            variants.append(Variant("FileShare, progress off (same pty worker)", "FileShare (progress off)",
                                    fileshare(progress_worker, "fsq", " -ProgressAction SilentlyContinue"),
                                    [self.single_host.pid], verify("fsq"), units))
        if self.available["curl"]:
            variants.append(Variant("nginx + curl", "nginx + curl", self.in_processes(
                lambda: [["curl", "-sf", "-o", prepare("curl"), nginx_url]]), self.nginx_pids, verify("curl"), units))
        variants.append(Variant("nginx + HttpClient (pwsh)", "HttpClient",
                                self.in_worker(http, f"[BenchHttp]::DownloadAll(@({ps_quote(nginx_url)}), "
                                                     f"@({ps_quote(os.path.join(out('http'), name))}), 1)"),
                                self.nginx_pids, verify("http"), units))
        self.prepare_before(variants[-1], lambda: prepare("http"))
        if peers:
            variants.append(Variant("nginx + Invoke-WebRequest", "Invoke-WebRequest",
                                    self.in_worker(http, f"Invoke-WebRequest {ps_quote(nginx_url)} -OutFile "
                                                         f"{ps_quote(os.path.join(out('iwr'), name))}"),
                                    self.nginx_pids, verify("iwr"), units))
            self.prepare_before(variants[-1], lambda: prepare("iwr"))
            if self.available["aria2c"]:
                variants.append(Variant("nginx + aria2c -x4", "aria2c -x4", self.in_processes(
                    lambda: [["aria2c", "-q", "-x4", "-s4", "-k1M", "--allow-overwrite=true", "--auto-file-renaming=false",
                              "--file-allocation=falloc", "-d", os.path.dirname(prepare("aria2")), "-o", name, nginx_url]]),
                    self.nginx_pids, verify("aria2"), units))
            variants.append(self.seed_variant(relative, units))
            variants.append(self.seed_client_from_fileshare(relative, units))
        if self.available["iperf3"]:
            variants.append(Variant("iperf3 memory to memory (ceiling)", "iperf3 ceiling", self.iperf_run(size),
                                    [self.iperf.pid], None, units, "one TCP stream, no file on either side"))
        self.measure(label, variants, rounds, warmup, warmup_rounds=LONG_WARMUP_ROUNDS)
        self.progress_pairs(label, variants)

    def progress_pairs(self, shape, variants, pairs=None):
        """Progress on and off, run back to back many times more: the cost is the median of the paired ratios.

        The machine's own drift over a shape (other rows' caches, the load) is larger than what drawing progress costs,
        so each 'on' run is compared with the 'off' run just before or after it (the order alternates), not with the
        median of runs minutes apart.
        """
        on = next((v for v in variants if v.tool == "FileShare (progress on)"), None)
        off = next((v for v in variants if v.tool == "FileShare (progress off)"), None)
        if on is None or off is None:
            return
        pairs = pairs or (3 if self.quick else 10)
        log(f"shape '{shape}': progress on/off, {pairs} more back-to-back pairs")
        ratios = []
        for index in range(pairs):
            seconds = {}
            for variant in ([on, off] if index % 2 == 0 else [off, on]):
                self.clear_out()
                seconds[variant.tool] = variant.run()["seconds"]
                if variant.verify:
                    variant.verify()
            ratios.append(seconds[on.tool] / seconds[off.tool])
        self.clear_out()
        self.facts.setdefault("progress_pairs", {})[shape] = ratios

    @staticmethod
    def prepare_before(variant, prepare):
        run = variant.run

        def prepared():
            prepare()
            return run()
        variant.run = prepared

    def nowhere_script(self, port, relative):
        core = os.path.join(self.module_dir, "bin", "FileShare.Core.dll")
        return f"""
Add-Type -Path {ps_quote(core)}
$none = [Threading.CancellationToken]::None
$connection = [FileShare.Client.FileShareConnection]::ConnectAsync('127.0.0.1', {port}, [FileShare.Client.FileShareClientOptions]::Default, $none).GetAwaiter().GetResult()
try {{
    $null = $connection.RequestRangeAsync({ps_quote(relative)}, 0, -1, $none).GetAwaiter().GetResult()
    $sink = [IO.File]::OpenHandle('/dev/null', [IO.FileMode]::Open, [IO.FileAccess]::Write)
    try {{ $connection.ReceiveRangeAsync({ps_quote(relative)}, $sink, 0, $null, $none).GetAwaiter().GetResult() }} finally {{ $sink.Dispose() }}
}} finally {{ $connection.Dispose() }}
"""

    def iperf_run(self, size):
        def run():
            report_path = os.path.join(self.work, "iperf3.json")
            process_seconds, cpu, peak = run_processes([["iperf3", "-c", "127.0.0.1", "-p", str(self.iperf_port),
                                                         "-n", str(size), "-J", "--logfile", report_path]])
            with open(report_path) as file:
                report = json.load(file)
            os.remove(report_path)
            # iperf3's own receiver time: the stream alone, without process start and the control connection.
            seconds = report["end"]["sum_received"]["seconds"]
            return {"seconds": seconds, "cpu": cpu, "peak_kib": peak, "extra": {"process_seconds": process_seconds}}
        return run

    def seed_variant(self, relative, units):
        original = os.environ.get("FILESHARE_SEED_PATH")
        if original:
            server = os.path.join(original, "server.py")
            client = os.path.join(original, "client.py")
            if not (os.path.isfile(server) and os.path.isfile(client)):
                log(f"FILESHARE_SEED_PATH={original} has no server.py/client.py; the original program is skipped")
                original = None
        if not original:
            if not getattr(self, "seed_skip_logged", False):
                log("FILESHARE_SEED_PATH is not set: the original Python program is skipped; running our own "
                    "re-implementation of its protocol (tests/peers/seed_*.py) as 'seed protocol (our Python)'")
                self.seed_skip_logged = True
            return self.seed_client_variant(
                "seed protocol (our Python re-implementation)", "seed protocol (Python)", "seed", self.seed_port,
                self.seed.pid, relative, units,
                "tests/peers/seed_server.py + seed_client.py: the original program's protocol, not its code")
        log("FILESHARE_SEED_PATH is set but driving the original program's interactive client is not automated yet; skipped")
        return None

    def seed_client_from_fileshare(self, relative, units):
        """The original program's client (our stand-in) downloading from FileShare's server in its seed dialect."""
        return self.seed_client_variant(
            "seed_client.py from FileShare's server (seed dialect)", "seed client <- FileShare", "seedfs",
            self.single_port, self.single_host.pid, relative, units,
            "the seed protocol's Python client against FileShare's server: how the original program's users fare")

    def seed_client_variant(self, label, tool, folder, port, server_pid, relative, units, note):
        client = os.path.join(self.repo, "tests/peers/seed_client.py")
        target = os.path.join(self.out, folder, os.path.basename(relative))

        def argvs():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            return [[sys.executable, client, "127.0.0.1", str(port), relative, target]]
        return Variant(label, tool, self.in_processes(argvs), [server_pid], lambda: self.verify([(target, relative)]),
                       units, note)

    def shape_concurrent(self, label, files_per_server, servers_ports, size_relative, rounds, fs_workers=1,
                         peers=True):
        """len(servers_ports) servers x files_per_server clients, every download a different name (hard links)."""
        names = []
        for server_index, port in enumerate(servers_ports):
            for client_index in range(files_per_server):
                relative = f"conc/s{server_index:02d}-c{client_index:03d}.bin"
                if relative not in self.hashes:
                    self.link(relative, size_relative)
                names.append((port, server_index, relative))
        total = len(names)
        size = os.path.getsize(os.path.join(self.data, size_relative))
        units = {"bytes": size * total, "files": total}
        host = self.conc_host

        def verify(tool):
            return lambda: self.verify([(os.path.join(self.out, tool, os.path.basename(r)), r) for _, _, r in names])

        chunks = [names[i::fs_workers] for i in range(fs_workers)]
        workers = [self.worker(f"fileshare-client{'' if i == 0 else i}") for i in range(fs_workers)]

        def fileshare():
            scripts = []
            for chunk in chunks:
                items = ",".join(f"[pscustomobject]@{{Name={ps_quote(r)};ComputerName='127.0.0.1';Port={p}}}" for p, _, r in chunk)
                scripts.append(f"@({items}) | Get-RemoteFile -ThrottleLimit {len(chunk)} "
                               f"-Destination {ps_quote(os.path.join(self.out, 'fs'))}")
            return self.parallel_workers(workers, scripts)

        host_peaks = self.facts.setdefault("conc_host_peak_by_run_kib", [])

        def fileshare_noting_host_peak():
            # The host's peak after each batch of 200: the first batch alone, and every later one on top of it (no GC
            # may have run in between, so garbage from earlier batches is still counted).
            figures = fileshare()
            host_peaks.append(status_kib(host.pid, "VmHWM"))
            return figures

        variants = [Variant(f"FileShare ({fs_workers} client pwsh, -ThrottleLimit {len(chunks[0])})", "FileShare",
                            self.flatten_out(fileshare_noting_host_peak, "fs"), [host.pid], verify("fs"), units)]
        urls = [(f"http://127.0.0.1:{self.nginx_ports[s]}/{r}", os.path.basename(r)) for _, s, r in names]

        def curl_processes():
            target = self.fresh_out("curl")
            return [["curl", "-sf", "-o", os.path.join(target, n), u] for u, n in urls]
        variants.append(Variant(f"nginx + {total} curl processes", "nginx + curl", self.in_processes(curl_processes),
                                self.nginx_pids, verify("curl"), units))
        if peers:
            def curl_parallel():
                target = self.fresh_out("curlp")
                argv = ["curl", "-sf", "--parallel", "--parallel-max", str(min(total, 300))]
                for url, name in urls:
                    argv += ["-o", os.path.join(target, name), url]
                return [argv]
            variants.append(Variant("nginx + curl --parallel", "curl --parallel", self.in_processes(curl_parallel),
                                    self.nginx_pids, verify("curlp"), units))
            http = self.worker("pwsh-http")
            script = (f"[BenchHttp]::DownloadAll({ps_array(u for u, _ in urls)}, "
                      f"{ps_array(os.path.join(self.out, 'http', n) for _, n in urls)}, {total})")
            variants.append(Variant("nginx + HttpClient (pwsh, all at once)", "HttpClient",
                                    self.in_worker(http, script), self.nginx_pids, verify("http"), units))
            self.prepare_before(variants[-1], lambda: self.fresh_out("http"))
        if peers and not self.quick:
            http = self.worker("pwsh-http")
            script = (f"{ps_array(u for u, _ in urls)} | ForEach-Object -ThrottleLimit {min(total, 64)} -Parallel "
                      f"{{ $ProgressPreference = 'SilentlyContinue'; Invoke-WebRequest $_ -OutFile "
                      f"(Join-Path {ps_quote(os.path.join(self.out, 'iwr'))} ($_ -split '/')[-1]) }}")
            variants.append(Variant("nginx + ForEach-Object -Parallel (64) + IWR", "Invoke-WebRequest",
                                    self.in_worker(http, script), self.nginx_pids, verify("iwr"), units))
            self.prepare_before(variants[-1], lambda: self.fresh_out("iwr"))
        self.measure(label, variants, rounds)

    def flatten_out(self, run, tool):
        """FileShare keeps the remote folder (conc/...) under the destination; verification looks in out/tool."""
        def flattened():
            figures = run()
            nested = os.path.join(self.out, tool, "conc")
            if os.path.isdir(nested):
                for name in os.listdir(nested):
                    os.rename(os.path.join(nested, name), os.path.join(self.out, tool, name))
            return figures
        return flattened

    def parallel_workers(self, workers, scripts):
        """Runs one script per worker at once; wall time from the first send to the last answer."""
        if len(workers) == 1:
            return self.in_worker(workers[0], scripts[0])()
        meters = [Meter([w.pid]) for w in workers]
        for meter in meters:
            meter.start()
        started = time.perf_counter()
        for worker, script in zip(workers, scripts):
            worker.commands.write(json.dumps({"script": script}) + "\n")
            worker.commands.flush()
        answers = [worker._read_answer(1800) for worker in workers]
        seconds = time.perf_counter() - started
        errors = [a["error"] for a in answers if a["error"]]
        if errors:
            raise RuntimeError(errors[0])
        figures = [meter.stop() for meter in meters]
        return {"seconds": seconds, "cpu": sum(f["cpu"] for f in figures), "peak_kib": sum(f["peak_kib"] for f in figures),
                "start_kib": sum(f["start_kib"] for f in figures)}

    def shape_small(self, label, folder, names, rounds, throttle):
        port = self.single_port
        units = {"bytes": sum(os.path.getsize(os.path.join(self.data, folder, n)) for n in names), "files": len(names)}
        fs = self.worker("fileshare-client")

        def verify(tool):
            return lambda: self.verify([(os.path.join(self.out, tool, folder, n), f"{folder}/{n}") for n in names])

        def fileshare(worker, tool, limit, extra=""):
            remote = ps_array(f"{folder}/{n}" for n in names)
            return self.in_worker(worker, f"Get-RemoteFile -Name {remote} -ComputerName 127.0.0.1 -Port {port} "
                                          f"-ThrottleLimit {limit} -Destination {ps_quote(os.path.join(self.out, tool))}{extra}")

        progress_worker = self.worker("fileshare-progress", terminal=True)

        urls = [f"http://127.0.0.1:{self.nginx_ports[0]}/{folder}/{n}" for n in names]

        def curl(tool, parallel):
            def argvs():
                target = self.fresh_out(tool)
                os.makedirs(os.path.join(target, folder))
                config = os.path.join(self.work, f"{tool}.curlrc")
                with open(config, "w") as file:
                    for url, name in zip(urls, names):
                        file.write(f'url = "{url}"\noutput = "{os.path.join(target, folder, name)}"\n')
                argv = ["curl", "-sf", "-K", config]
                if parallel:
                    argv += ["--parallel", "--parallel-max", str(parallel)]
                return [argv]
            return self.in_processes(argvs)

        variants = [
            Variant("FileShare -ThrottleLimit 1 (one after another)", "FileShare", fileshare(fs, "fs1", 1),
                    [self.single_host.pid], verify("fs1"), units),
            Variant(f"FileShare -ThrottleLimit {throttle}", "FileShare (throttled)", fileshare(fs, "fsn", throttle),
                    [self.single_host.pid], verify("fsn"), units),
            Variant("FileShare -ThrottleLimit 1, progress on (pty)", "FileShare (progress on)",
                    fileshare(progress_worker, "fsp", 1), [self.single_host.pid], verify("fsp"), units),
            Variant("FileShare -ThrottleLimit 1, progress off (same pty worker)", "FileShare (progress off)",
                    fileshare(progress_worker, "fsq", 1, " -ProgressAction SilentlyContinue"),
                    [self.single_host.pid], verify("fsq"), units),
            Variant("nginx + one curl, keep-alive, one after another", "nginx + curl", curl("curl", 0),
                    self.nginx_pids, verify("curl"), units),
            Variant(f"nginx + one curl --parallel-max {throttle}", "curl --parallel", curl("curlp", throttle),
                    self.nginx_pids, verify("curlp"), units),
        ]
        http = self.worker("pwsh-http")
        target = os.path.join(self.out, "http", folder)
        script = (f"[BenchHttp]::DownloadAll({ps_array(urls)}, {ps_array(os.path.join(target, n) for n in names)}, 1)")
        variants.append(Variant("nginx + HttpClient (pwsh), one after another", "HttpClient",
                                self.in_worker(http, script), self.nginx_pids, verify("http"), units))
        self.prepare_before(variants[-1], lambda: os.makedirs(target, exist_ok=True))
        self.measure(label, variants, rounds, warmup_rounds=LONG_WARMUP_ROUNDS)
        # A pair takes under half a second here, and one slow round trip moves a pair's ratio by tens of percent.
        self.progress_pairs(label, variants, pairs=3 if self.quick else 30)

    def shape_listing(self, label, folder, count, rounds):
        port = self.single_port
        units = {"files": count}
        fs = self.worker("fileshare-client")
        http = self.worker("pwsh-http")
        json_path = os.path.join(self.out, "listing.json")

        def check(output):
            if int(output[0]) != count:
                raise RuntimeError(f"listing returned {output[0]} entries, expected {count}")

        def counted(run):
            def checked():
                figures = run()
                check(figures["output"])
                return figures
            return checked

        def verify_json():
            with open(json_path) as file:
                entries = json.load(file)
            if len(entries) != count:
                raise RuntimeError(f"nginx listed {len(entries)} entries, expected {count}")

        url = f"http://127.0.0.1:{self.nginx_ports[0]}/{folder}/"
        variants = [
            Variant("FileShare Get-RemoteFileList (objects in pwsh)", "FileShare",
                    counted(self.in_worker(fs, f"@(Get-RemoteFileList -ComputerName 127.0.0.1 -Port {port} "
                                               f"-Path {ps_quote(folder)}).Count")), [self.single_host.pid], None, units),
            Variant("nginx autoindex JSON + Invoke-RestMethod (objects in pwsh)", "Invoke-RestMethod",
                    counted(self.in_worker(http, f"(Invoke-RestMethod {ps_quote(url)}).Count")), self.nginx_pids,
                    None, units),
            Variant("nginx autoindex JSON + curl (bytes to a file)", "nginx + curl",
                    self.in_processes(lambda: [["curl", "-sf", "-o", json_path, url]]), self.nginx_pids, verify_json,
                    units),
        ]
        self.measure(label, variants, rounds)

    def shape_cold(self, label, rounds):
        port = self.single_port
        env = dict(os.environ, PSModulePath=os.path.dirname(os.path.dirname(self.module_dir)) + os.pathsep +
                   os.environ.get("PSModulePath", ""))
        target = os.path.join(self.out, "cold")
        command = (f"Import-Module FileShare; Get-RemoteFile cold/small.txt -ComputerName 127.0.0.1 -Port {port} "
                   f"-Destination {target}")

        # pwsh replays the JIT profile its last run saved (~/.cache/powershell/StartupProfileData-NonInteractive) and
        # saves its own at exit: with one cache the two commands, taking turns, each started from the other's profile.
        # Each gets a cache of its own, primed by the warm-up rounds, as a user repeating one command has.
        def own_cache(name):
            cache = os.path.join(self.work, f"cold-cache-{name}")
            os.makedirs(cache, exist_ok=True)
            return dict(env, XDG_CACHE_HOME=cache)

        variants = [
            Variant("pwsh -NoProfile -c \"Import-Module FileShare; Get-RemoteFile ...\"", "FileShare (cold pwsh)",
                    self.in_processes(lambda: [self.pwsh + ["-NoProfile", "-c", command]], env=own_cache("fileshare")),
                    [self.single_host.pid], lambda: self.verify([(os.path.join(target, "cold/small.txt"), "cold/small.txt")]),
                    {"files": 1}),
            Variant("pwsh -NoProfile -c exit", "pwsh -c exit",
                    self.in_processes(lambda: [self.pwsh + ["-NoProfile", "-c", "exit"]], env=own_cache("exit")), [], None, {"files": 0}),
        ]
        self.measure(label, variants, rounds)

    def shape_hash(self, label, folder, count, big_relative, rounds):
        """issue 4: Get-RemoteFileList -Hash the first time (files touched, so every cached digest is stale) and cached."""
        port = self.single_port
        fs = self.worker("fileshare-client")
        paths = [os.path.join(self.data, folder, name) for name in sorted(os.listdir(os.path.join(self.data, folder)))]
        big = os.path.join(self.data, big_relative)
        sample = f"{folder}/{os.path.basename(paths[0])}"

        def touch(files):
            now = time.time()
            for path in files:
                os.utime(path, (now, now))

        def listing(remote_folder, name_filter, expected_relative, files, first):
            script = (f"$l = @(Get-RemoteFileList -ComputerName 127.0.0.1 -Port {port} -Path {ps_quote(remote_folder)} "
                      f"{name_filter} -Hash); $l.Count; ($l | Sort-Object Name | Select-Object -First 1).Hash")
            run = self.in_worker(fs, script)

            def measured():
                if first:
                    touch(files)
                    time.sleep(0.01)
                figures = run()
                if figures["output"][1].lower() != self.hashes[expected_relative]:
                    raise RuntimeError(f"-Hash gave {figures['output'][1]}, Get-FileHash-equivalent is {self.hashes[expected_relative]}")
                return figures
            return measured

        big_folder, big_name = os.path.split(big_relative)
        size = os.path.getsize(big)
        variants = [
            Variant(f"{count:,} files, first (touched)", "FileShare -Hash first",
                    listing(folder, "", sample, paths, True), [self.single_host.pid], None,
                    {"files": count, "bytes": count * os.path.getsize(paths[0])}),
            Variant(f"{count:,} files, cached", "FileShare -Hash cached",
                    listing(folder, "", sample, paths, False), [self.single_host.pid], None,
                    {"files": count, "bytes": count * os.path.getsize(paths[0])}),
            Variant(f"one {size / GIB:g} GiB file, first (touched)", "FileShare -Hash first",
                    listing(big_folder, f"-Name {ps_quote('*' + big_name)}", big_relative, [big], True),
                    [self.single_host.pid], None, {"files": 1, "bytes": size}),
            Variant(f"one {size / GIB:g} GiB file, cached", "FileShare -Hash cached",
                    listing(big_folder, f"-Name {ps_quote('*' + big_name)}", big_relative, [big], False),
                    [self.single_host.pid], None, {"files": 1, "bytes": size}),
        ]
        # Order matters here (first before cached), so these variants are not rotated: one round is first, cached.
        for round_number in range(1, rounds + 1):
            for variant in variants:
                self.measure_one(label, variant, round_number)

    def measure_one(self, shape, variant, round_number):
        meter = Meter(variant.server_pids)
        meter.start()
        figures = variant.run()
        server = meter.stop()
        self.results.append({"shape": shape, "variant": variant.name, "tool": variant.tool, "round": round_number,
                             "seconds": figures["seconds"], "client_cpu": figures.get("cpu"),
                             "client_peak_kib": figures.get("peak_kib"), "client_start_kib": figures.get("start_kib"),
                             "server_cpu": server["cpu"], "server_peak_kib": server["peak_kib"],
                             "server_start_kib": server["start_kib"], "note": variant.note, **variant.units})
        log(f"  round {round_number} {variant.name}: {figures['seconds']:.3f} s")

    # ---------------------------------------------------------------- orchestration

    def run(self):
        started = time.time()
        self.facts["load_before"] = os.getloadavg()
        self.ensure_packages()
        quick = self.quick
        log(f"work folder {self.work} ({'tmpfs' if self.tmpfs else 'NOT tmpfs'}); "
            f"{'quick' if quick else 'full'} run, {self.rounds} rounds")

        log("preparing data")
        single_sizes = [256 * MIB] if quick else [GIB, 4 * GIB]
        concurrent_size = MIB if quick else 10 * MIB
        small_count = 500 if quick else 2000
        listing_count = 10_000 if quick else 100_000
        hash_count = 2_000 if quick else 10_000
        wanted = self.shapes
        for size in single_sizes:
            if wanted & {"single", "hash"}:
                self.make_file(f"single/{size // MIB}m.bin", size)
        self.make_file("conc-source/c.bin", concurrent_size)
        small_names = self.make_small_files("small", small_count, 4096)
        self.make_small_files("hashed", hash_count, 4096)
        os.makedirs(os.path.join(self.data, "listing"))
        for i in range(listing_count):
            open(os.path.join(self.data, "listing", f"entry-{i:06d}.txt"), "w").close()
        self.make_file("cold/small.txt", 1024)
        os.system(f"chmod -R a+rX {self.data}")

        ports = free_ports(10 + 10 + 3)
        self.start_nginx(ports[:10])
        conc_ports = ports[10:20]
        self.single_port, self.iperf_port, self.seed_port = ports[20:23]
        if self.available["iperf3"]:
            self.iperf = self.start_process(["iperf3", "-s", "-p", str(self.iperf_port), "-B", "127.0.0.1"], self.iperf_port)
        self.seed = self.start_process([sys.executable, os.path.join(self.repo, "tests/peers/seed_server.py"),
                                        self.data, "127.0.0.1", str(self.seed_port)], self.seed_port)
        self.single_host = self.fileshare_host("fileshare-server", [self.single_port], self.data)
        idle_single = status_kib(self.single_host.pid, "VmRSS")
        self.conc_host = self.fileshare_host("fileshare-10-servers", conc_ports, self.data)
        self.facts["conc_host_idle_kib"] = status_kib(self.conc_host.pid, "VmRSS")
        reset_peak_rss(self.conc_host.pid)

        if "cold" in wanted:
            self.shape_cold("5. cold start, one 1 KiB file", 2 if quick else self.rounds)
        for size in single_sizes if "single" in wanted else []:
            relative = f"single/{size // MIB}m.bin"
            big = size > GIB
            if big:  # the server's first digest of 4 GiB is the hash-cost figure, not part of a download
                self.worker("fileshare-client").run(f"Get-RemoteFileList -ComputerName 127.0.0.1 -Port {self.single_port} "
                                                    f"-Path single -Name '*{size // MIB}m.bin' -Hash | Out-Null")
            if big:
                self.facts.setdefault("notes", []).append(
                    f"the {size // MIB:,} MiB rows have three rounds and no warm-up round (the processes are warm from "
                    "the 1 GiB rows; the server hashed the file first, untimed) and fewer peers")
            # 4 GiB: three rounds, no warm-up round (every process is warm from the 1 GiB shape), fewer peers.
            self.shape_single(f"1. one {size // MIB:,} MiB file, to a file", relative, 3 if big else self.rounds,
                              peers=not big, warmup=not big)
        self.facts["single_host_idle_kib"] = idle_single
        if "concurrent" in wanted:
            self.shape_concurrent(f"2. 10 servers x 20 clients = 200 concurrent {concurrent_size // MIB} MiB downloads",
                                  20, conc_ports, "conc-source/c.bin", self.rounds)
            self.facts["conc_host_peak_kib"] = status_kib(self.conc_host.pid, "VmHWM")
            if not quick:
                log("ten-server host growth at 200 concurrent 1 MiB and 4 GiB downloads (fresh hosts)")
                from host_growth import measure_sizes  # after run's own definitions: host_growth imports them
                self.facts["host_growth"] = measure_sizes(self.pwsh, self.module_dir)
        if "small" in wanted:
            self.shape_small(f"3. {small_count:,} files of 4 KiB", "small", small_names, self.rounds, 16)
        if "listing" in wanted:
            self.shape_listing(f"4. listing of {listing_count:,} files", "listing", listing_count,
                               3 if quick else self.rounds)
        if "hash" in wanted:
            self.shape_hash("hash cost (issue 4): Get-RemoteFileList -Hash", "hashed", hash_count,
                            f"single/{single_sizes[-1] // MIB}m.bin", 1 if quick else 3)
        if not quick and "scaling" in wanted:
            self.shape_scaling(conc_ports)
            self.facts["conc_host_peak_after_scaling_kib"] = status_kib(self.conc_host.pid, "VmHWM")
        self.facts["seconds"] = time.time() - started
        self.facts["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self.facts["load_after"] = os.getloadavg()

    def shape_scaling(self, ports):
        """Time per byte as work grows: concurrent 1 MiB downloads, and one file of growing size (FileShare only)."""
        self.make_file("scale/1m.bin", MIB)
        for concurrency in (1, 10, 100, 1000):
            per_server = max(1, concurrency // 10)
            use = ports[:min(10, concurrency)]
            workers = 1 if concurrency <= 250 else 4
            self.shape_concurrent_fileshare_only(f"scaling: {concurrency} concurrent 1 MiB", per_server, use, workers)
        for size_mib in (1, 16, 256):
            relative = f"scale/{size_mib}m-single.bin"
            self.make_file(relative, size_mib * MIB)
            self.shape_single_fileshare_only(f"scaling: one {size_mib} MiB file", relative)

    def shape_concurrent_fileshare_only(self, label, per_server, ports, workers):
        names = []
        for server_index, port in enumerate(ports):
            for client_index in range(per_server):
                relative = f"scale/s{server_index:02d}-c{client_index:03d}.bin"
                if relative not in self.hashes:
                    self.link(relative, "scale/1m.bin")
                names.append((port, relative))
        chunks = [names[i::workers] for i in range(workers)]
        clients = [self.worker(f"fileshare-client{'' if i == 0 else i}") for i in range(workers)]

        def run():
            scripts = []
            for chunk in chunks:
                items = ",".join(f"[pscustomobject]@{{Name={ps_quote(r)};ComputerName='127.0.0.1';Port={p}}}" for p, r in chunk)
                scripts.append(f"@({items}) | Get-RemoteFile -ThrottleLimit {len(chunk)} -Destination "
                               f"{ps_quote(os.path.join(self.out, 'fs'))}")
            return self.parallel_workers(clients, scripts)
        verify = lambda: self.verify([(os.path.join(self.out, "fs", r), r) for _, r in names])  # noqa: E731
        units = {"bytes": MIB * len(names), "files": len(names)}
        self.measure(label, [Variant(f"FileShare, {len(names)} at once ({workers} client pwsh)", "FileShare", run,
                                     [self.conc_host.pid], verify, units)], 3)

    def shape_single_fileshare_only(self, label, relative):
        size = os.path.getsize(os.path.join(self.data, relative))
        target = os.path.join(self.out, "fs")
        script = (f"Get-RemoteFile {ps_quote(relative)} -ComputerName 127.0.0.1 -Port {self.single_port} "
                  f"-Destination {ps_quote(target)}")
        self.measure(label, [Variant("FileShare Get-RemoteFile", "FileShare", self.in_worker(self.worker("fileshare-client"), script),
                                     [self.single_host.pid], lambda: self.verify([(os.path.join(target, relative), relative)]),
                                     {"bytes": size, "files": 1})], 3)

    def close(self):
        for name in list(self.workers):
            self.stop_worker(name)
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:
                log(f"cleanup: {error}")
        shutil.rmtree(self.work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of: " + ",".join(SHAPES))
    parser.add_argument("--command-line", default="./build.ps1 Bench")
    parser.add_argument("--pwsh", nargs="+", required=True)
    parser.add_argument("--runs", type=int, default=1, help="whole runs one after another; with more than one, the "
                        "targets of every run and their medians go into docs/benchmarks.md")
    args = parser.parse_args()
    import report
    failed = False
    saved = []
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            log(f"run {number} of {args.runs}")
        harness = Harness(args)
        harness.commit = report.commit(args.repo)
        try:
            harness.run()
        finally:
            harness.close()
        report.write(harness, args)
        failed |= any("error" in r for r in harness.results)
        saved.append(os.path.join(args.repo, "out", "bench", f"run-{number}.json"))
        shutil.copyfile(os.path.join(args.repo, "out", "bench", "results.json"), saved[-1])
    if len(saved) > 1 and not args.no_docs and set(args.shapes.split(",")) == set(SHAPES):
        report.write_series(args.repo, saved, args.command_line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())

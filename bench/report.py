"""Turns the harness's measurements into results.json/.csv, a chart and the markdown section of docs/benchmarks.md."""
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from typing import NamedTuple

from run import BEGIN_MARKER, END_MARKER, GIB, MIB, SERIES_BEGIN_MARKER, SERIES_END_MARKER, SHAPES, log


def summarise(results):
    groups = {}
    for record in results:
        groups.setdefault((record["shape"], record["variant"]), []).append(record)
    rows = []
    # Numbered shapes in their issue's order, then the rest (hash cost, scaling) as run.
    shapes = sorted(dict.fromkeys(shape for shape, _ in groups), key=lambda shape: (not shape[0].isdigit(), shape[0].isdigit() and shape[0]))
    # FileShare rows first, then the peers as declared, the ceiling last.
    rank = lambda tool: 0 if tool.startswith("FileShare") else 2 if "ceiling" in tool else 1  # noqa: E731
    ordered = sorted(groups.items(), key=lambda item: (shapes.index(item[0][0]), rank(item[1][0]["tool"]),
                                                       item[1][0].get("order", 0)))
    for (shape, variant), records in ordered:
        good = [r for r in records if "error" not in r]
        row = {"shape": shape, "variant": variant, "tool": records[0]["tool"], "runs": len(good),
               "errors": [r["error"] for r in records if "error" in r], "note": records[0].get("note", "")}
        if good:
            seconds = [r["seconds"] for r in good]
            row.update(median_s=statistics.median(seconds), min_s=min(seconds), max_s=max(seconds),
                       bytes=good[0].get("bytes"), files=good[0].get("files"))
            for key in ("client_cpu", "server_cpu"):
                values = [r[key] for r in good if r.get(key) is not None]
                row[key] = statistics.median(values) if values else None
            for key in ("client_peak_kib", "server_peak_kib"):
                values = [r[key] for r in good if r.get(key) is not None]
                row[key] = max(values) if values else None
            growth = [r["client_peak_kib"] - r["client_start_kib"] for r in good
                      if r.get("client_start_kib") and r.get("client_peak_kib")]
            row["client_growth_kib"] = max(growth) if growth else None
            growth = [r["server_peak_kib"] - r["server_start_kib"] for r in good
                      if r.get("server_start_kib") and r.get("server_peak_kib")]
            row["server_growth_kib"] = max(growth) if growth else None
            if row["bytes"]:
                row["mib_s"] = row["bytes"] / MIB / row["median_s"]
                row["ns_per_byte"] = row["median_s"] * 1e9 / row["bytes"]
            if row["files"] and row["files"] > 1:
                row["files_s"] = row["files"] / row["median_s"]
        rows.append(row)
    return rows


def progress_cost(rows, facts, shape, label):
    """Progress on against off: the median of back-to-back paired ratios when the harness ran them, else the medians."""
    ratios = (facts.get("progress_pairs") or {}).get(shape)
    if ratios:
        ordered = sorted(ratios)
        cost = statistics.median(ordered) - 1
        return Target(label, f"{cost:+.1%} (median of {len(ordered)} back-to-back pairs; {ordered[0] - 1:+.0%} to {ordered[-1] - 1:+.0%})",
                      cost, 0.03, "%", higher_is_better=False, strict=True)
    progress = find(rows, shape, "FileShare (progress on)")
    quiet = find(rows, shape, "FileShare (progress off)")
    if quiet and progress:
        cost = progress["median_s"] / quiet["median_s"] - 1
        return Target(label, f"{cost:+.1%}", cost, 0.03, "%", higher_is_better=False, strict=True)
    return None


def find(rows, shape_prefix, tool=None, variant_prefix=None):
    for row in rows:
        if row["shape"].startswith(shape_prefix) and "median_s" in row:
            if (tool is None or row["tool"] == tool) and (variant_prefix is None or row["variant"].startswith(variant_prefix)):
                return row
    return None


class Target(NamedTuple):
    label: str
    measured: str
    value: float
    goal: float
    unit: str  # how the value reads on its own: "x" (a ratio), "%" (a cost), " MiB"
    higher_is_better: bool = True
    strict: bool = False

    @property
    def verdict(self):
        return verdict(self.value, self.goal, self.higher_is_better, self.strict)

    def format(self, value):
        return f"{value:+.1%}" if self.unit == "%" else f"{value:,.1f}{self.unit}" if self.unit == " MiB" else f"{value:.2f}{self.unit}"


def verdict(value, target, higher_is_better=True, strict=False):
    if value is None:
        return "not measured"
    if higher_is_better:
        met = value > target if strict else value >= target
    else:
        met = value < target if strict else value <= target
    return "**met**" if met else "**not met**"


def memory_target(label, growth_mib, detail=None):
    measured = f"{growth_mib:,.1f} MiB" + (f" ({detail})" if detail else "")
    return Target(label, measured, growth_mib, 32, " MiB", higher_is_better=False, strict=True)


def targets(rows, facts):
    """A Target for every target of issue 5 the run could measure."""
    lines = []
    singles = sorted({r["shape"] for r in rows if r["shape"].startswith("1.")})
    for shape in singles:
        fs = find(rows, shape, "FileShare")
        peers = [r for r in rows if r["shape"] == shape and "mib_s" in r and r["tool"] in
                 ("nginx + curl", "HttpClient", "Invoke-WebRequest", "aria2c -x4", "seed protocol (Python)")]
        if fs and peers:
            best = max(peers, key=lambda r: r["mib_s"])
            ratio = fs["mib_s"] / best["mib_s"]
            lines.append(Target(f"{shape[3:]}: FileShare >= 1.0x best peer",
                                f"{ratio:.2f}x ({fs['mib_s']:,.0f} vs {best['tool']} {best['mib_s']:,.0f} MiB/s)", ratio, 1.0, "x"))
        nowhere = find(rows, shape, "FileShare (to nowhere)")
        iperf = find(rows, shape, "iperf3 ceiling")
        if nowhere and iperf:
            ratio = nowhere["mib_s"] / iperf["mib_s"]
            lines.append(Target(f"{shape[3:]}: to nowhere >= 0.7x iperf3 single stream",
                                f"{ratio:.2f}x ({nowhere['mib_s']:,.0f} vs {iperf['mib_s']:,.0f} MiB/s)", ratio, 0.7, "x"))
        curl = find(rows, shape, "nginx + curl")
        if fs and curl and fs.get("client_cpu") is not None and curl.get("client_cpu") is not None:
            per_gib = lambda row, key: row[key] / (row["bytes"] / GIB)  # noqa: E731
            for key, label in (("client_cpu", "client CPU per GiB <= curl's"), ("server_cpu", "server CPU per GiB <= nginx's")):
                # Judged as FileShare's CPU over the peer's in the same run, so runs can be compared.
                # A peer that read 0 s was not measured (a process missed), not infinitely cheap.
                lines.append(Target(f"{shape[3:]}: {label}", f"{per_gib(fs, key):.2f} s vs {per_gib(curl, key):.2f} s",
                                    fs[key] / curl[key] if curl[key] > 0 else None, 1.0, "x", higher_is_better=False))
            if fs.get("server_cpu") is not None and curl.get("server_cpu") is not None:
                # On loopback the kernel's TCP work for one connection runs partly in the sender's context and partly
                # in the receiver's, in shares that move from run to run; the sum is what the machine spent.
                ours, theirs = (row["client_cpu"] + row["server_cpu"] for row in (fs, curl))
                lines.append(Target(f"{shape[3:]}: client + server CPU per GiB <= curl + nginx's",
                                    f"{ours / (fs['bytes'] / GIB):.2f} s vs {theirs / (curl['bytes'] / GIB):.2f} s",
                                    ours / theirs if theirs > 0 else None, 1.0, "x", higher_is_better=False))
        progress_line = progress_cost(rows, facts, shape, f"{shape[3:]}: progress on costs < 3%")
        if progress_line:
            lines.append(progress_line)
        growth = [r["client_growth_kib"] for r in rows if r["shape"] == shape and r["tool"] == "FileShare" and r.get("client_growth_kib") is not None]
        if growth and fs and fs["bytes"] >= 4 * GIB:
            lines.append(Target("client pwsh grows < 64 MiB while downloading 4 GiB", f"{growth[0] / 1024:,.1f} MiB",
                                growth[0] / 1024, 64, " MiB", higher_is_better=False, strict=True))
    conc = find(rows, "2.", "FileShare")
    curl = find(rows, "2.", "nginx + curl")
    if conc and curl:
        ratio = conc["mib_s"] / curl["mib_s"]
        lines.append(Target("200 concurrent: aggregate >= 1.5x nginx + curl processes",
                            f"{ratio:.2f}x ({conc['mib_s']:,.0f} vs {curl['mib_s']:,.0f} MiB/s)", ratio, 1.5, "x"))
    if "conc_host_idle_kib" in facts and "conc_host_peak_kib" in facts:
        growth = (facts["conc_host_peak_kib"] - facts["conc_host_idle_kib"]) / 1024
        peaks = facts.get("conc_host_peak_by_run_kib") or []
        if peaks:
            first = (peaks[0] - facts["conc_host_idle_kib"]) / 1024
            lines.append(memory_target("process hosting ten servers grows < 32 MiB, idle to the first 200 concurrent", first))
        lines.append(memory_target(f"... the same host after all {len(peaks) or 'the'} batches of 200 (no GC needs to run between them)", growth))
    if "conc_host_peak_after_scaling_kib" in facts:
        growth = (facts["conc_host_peak_after_scaling_kib"] - facts["conc_host_idle_kib"]) / 1024
        lines.append(memory_target("... the same host after the scaling rows (up to 1,000 concurrent 1 MiB)", growth))
    for result in facts.get("host_growth", []):  # bench/host_growth.py
        growth = (result["peak_kib"] - result["idle_kib"]) / 1024
        # What the run moved (bytes received, files verified) goes with the figure: the label stays the same run to run.
        lines.append(memory_target(f"a fresh process hosting ten servers grows < 32 MiB, idle to 200 concurrent {result['file']} "
                                   "downloads", growth, result["what"]))
    big = [r for r in rows if r["shape"].startswith("1.") and r["tool"] == "FileShare" and r.get("bytes", 0) >= 4 * GIB]
    if big and "single_host_idle_kib" in facts and big[0].get("server_peak_kib"):
        growth = (big[0]["server_peak_kib"] - facts["single_host_idle_kib"]) / 1024
        lines.append(memory_target("server host grows < 32 MiB serving a 4 GiB file (idle to peak)", growth))
    small = find(rows, "3.", "FileShare")
    throttled = find(rows, "3.", "FileShare (throttled)")
    keepalive = find(rows, "3.", "nginx + curl")
    for row, label in ((small, "one after another"), (throttled, "with -ThrottleLimit")):
        if row and keepalive:
            ratio = row["files_s"] / keepalive["files_s"]
            lines.append(Target(f"small files {label}: >= 1.0x curl keep-alive",
                                f"{ratio:.2f}x ({row['files_s']:,.0f} vs {keepalive['files_s']:,.0f} files/s)", ratio, 1.0, "x"))
    small_shape = next((r["shape"] for r in rows if r["shape"].startswith("3.")), None)
    progress_line = progress_cost(rows, facts, small_shape, "small files: progress on costs < 3%") if small_shape else None
    if progress_line:
        lines.append(progress_line)
    cold = find(rows, "5.", "FileShare (cold pwsh)")
    bare = find(rows, "5.", "pwsh -c exit")
    if cold and bare:
        ratio = cold["median_s"] / bare["median_s"]
        lines.append(Target("cold Import-Module + Get-RemoteFile within 1.5x of pwsh -c exit",
                            f"{ratio:.2f}x ({cold['median_s']:.2f} s vs {bare['median_s']:.2f} s)", ratio, 1.5, "x", higher_is_better=False))
    for series, label in ((concurrency_series(rows), "concurrent downloads 1 -> 1,000"),
                          (size_series(rows), "file size 1 MiB -> 4 GiB")):
        if len(series) > 1:
            # Growth: the worst time per byte of a row against the best of the smaller rows before it. Fixed costs
            # make small rows dearer per byte; a quadratic step anywhere makes a larger row dearer.
            growth = max(series[i]["ns_per_byte"] / min(r["ns_per_byte"] for r in series[:i]) for i in range(1, len(series)))
            lines.append(Target(f"time per byte does not grow with work ({label}; worst row / best smaller row <= 1.5)",
                                f"{growth:.2f}x", growth, 1.5, "x", higher_is_better=False))
    return lines


def concurrency_series(rows):
    return [r for r in rows if r["shape"].startswith("scaling") and "concurrent" in r["shape"] and "ns_per_byte" in r]


def size_series(rows):
    singles = [r for r in rows if "ns_per_byte" in r and r["tool"] == "FileShare" and
               ((r["shape"].startswith("scaling") and "one" in r["shape"]) or r["shape"].startswith("1."))]
    return sorted(singles, key=lambda r: r["bytes"])


def commit(repo):
    """The commit measured, marked when the tree had changes."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"], capture_output=True, text=True).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    dotnet = subprocess.run(["dotnet", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {mem / 1024 / 1024:.0f} GiB RAM, Linux {platform.release()}, .NET SDK {dotnet}"


def fmt(value, spec, suffix=""):
    return "" if value is None else format(value, spec) + suffix


def markdown(rows, facts, harness, args, chart_name):
    load = lambda values: " / ".join(f"{v:.2f}" for v in values)  # noqa: E731
    out = [BEGIN_MARKER, "",
           f"Run of {facts.get('finished_utc') or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (commit {harness.commit}): `{args.command_line}` "
           f"({'quick' if harness.quick else 'full'}, {harness.rounds} rounds after two warm-up rounds (eight for one "
           f"file and for the small files) unless a row says otherwise; took {facts.get('seconds', 0) / 60:.1f} min).",
           f"Machine: {machine()}; data and downloads on {'tmpfs (/dev/shm)' if harness.tmpfs else 'DISK (no tmpfs)'}.",
           f"Load average (1/5/15 min) before: {load(facts['load_before'])}, after: {load(facts['load_after'])}. "
           "Other jobs shared this machine during the run; rerun on a quiet machine before trusting small differences.",
           "", f"![MiB/s or files/s per shape and tool]({chart_name})", "",
           "### Targets of issue 5", "", "| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {t.label} | {t.measured} | {t.verdict} |" for t in targets(rows, facts)]
    out += ["", "### All rows", "",
            "Wall time median (min-max); throughput from the median; CPU seconds are medians per run; RSS is the "
            "highest peak of any run (several client processes: their sum).", "",
            "| shape | variant | runs | wall s | MiB/s | files/s | client CPU s | server CPU s | client peak RSS MiB | server peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "median_s" not in row:
            out.append(f"| {row['shape']} | {row['variant']} | 0 | failed: {row['errors'][0][:120]} | | | | | | |")
            continue
        wall = f"{row['median_s']:.3f} ({row['min_s']:.3f}-{row['max_s']:.3f})"
        failed = f" ({len(row['errors'])} failed)" if row["errors"] else ""
        out.append(f"| {row['shape']} | {row['variant']} | {row['runs']}{failed} | {wall} | {fmt(row.get('mib_s'), ',.0f')} | "
                   f"{fmt(row.get('files_s'), ',.0f')} | {fmt(row.get('client_cpu'), '.2f')} | {fmt(row.get('server_cpu'), '.2f')} | "
                   f"{fmt(row['client_peak_kib'] and row['client_peak_kib'] / 1024, ',.0f')} | "
                   f"{fmt(row['server_peak_kib'] and row['server_peak_kib'] / 1024, ',.0f')} |")
    notes = sorted({f"{r['variant']}: {r['note']}" for r in rows if r.get("note")}) + facts.get("notes", [])
    if notes:
        out += ["", "Notes: " + "; ".join(notes) + "."]
    scaling = concurrency_series(rows) + size_series(rows)
    if scaling:
        out += ["", "### Cost as work grows (FileShare)", "", "| row | bytes | wall s | ns per byte |", "|---|---|---|---|"]
        out += [f"| {r['shape'].split(': ', 1)[-1].split('. ', 1)[-1]} | {r['bytes']:,} | {r['median_s']:.3f} | "
                f"{r['ns_per_byte']:.3f} |" for r in scaling]
    out += ["", "### Memory", ""]
    if "conc_host_idle_kib" in facts:
        out.append(f"- pwsh hosting the ten servers: {facts['conc_host_idle_kib'] / 1024:,.0f} MiB idle (servers started, "
                   "no request yet)" + (f", {facts['conc_host_peak_kib'] / 1024:,.0f} MiB peak through the 200-concurrent "
                                        "rounds" if "conc_host_peak_kib" in facts else "") + (f", {facts['conc_host_peak_after_scaling_kib'] / 1024:,.0f} MiB peak after the scaling rows"
                                if "conc_host_peak_after_scaling_kib" in facts else "") + ".")
    for row in rows:
        if row["shape"].startswith("1.") and row["tool"] == "FileShare" and row.get("client_growth_kib") is not None:
            out.append(f"- client pwsh during `{row['shape'][3:]}`: grew by at most {row['client_growth_kib'] / 1024:,.1f} MiB "
                       f"in a run (start RSS to peak RSS); server host peak {row['server_peak_kib'] / 1024:,.0f} MiB "
                       f"(idle {facts.get('single_host_idle_kib', 0) / 1024:,.0f} MiB).")
    out += ["", f"Raw results: `out/bench/results.json` and `results.csv` (not committed).", "", END_MARKER]
    return "\n".join(out)


def chart(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("python3-matplotlib is missing (apt-get install python3-matplotlib); no chart")
        return False
    shapes = []
    for row in rows:
        if "median_s" in row and row["shape"][0] in "1234" and row["shape"] not in shapes:
            shapes.append(row["shape"])
    if not shapes:
        log("no shape measured in MiB/s or files/s (a partial run); no chart")
        return False
    figure, axes = plt.subplots(len(shapes), 1, figsize=(10, 2.2 + 0.45 * len(rows)), squeeze=False)
    for axis, shape in zip(axes[:, 0], shapes):
        items = [r for r in rows if r["shape"] == shape and "median_s" in r]
        by_bytes = shape[0] in "12"
        values = [r["mib_s"] if by_bytes else r["files_s"] for r in items]
        colors = ["tab:blue" if r["tool"].startswith("FileShare") else "tab:gray" for r in items]
        axis.barh([r["variant"] for r in items], values, color=colors)
        for index, value in enumerate(values):
            axis.text(value, index, f" {value:,.0f}", va="center", fontsize=8)
        axis.invert_yaxis()
        axis.set_title(shape, fontsize=10, loc="left")
        axis.set_xlabel("MiB/s (median)" if by_bytes else "files/s (median)", fontsize=8)
        axis.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def write(harness, args):
    rows = summarise(harness.results)
    folder = os.path.join(harness.repo, "out", "bench")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as file:
        json.dump({"facts": harness.facts, "rows": rows, "runs": harness.results, "harness": {
            "repo": harness.repo, "quick": harness.quick, "rounds": harness.rounds, "tmpfs": harness.tmpfs,
            "shapes": sorted(harness.shapes), "command_line": args.command_line,
            "commit": harness.commit}}, file, indent=1, default=str)
    keys = ["shape", "variant", "tool", "round", "seconds", "bytes", "files", "client_cpu", "server_cpu",
            "client_peak_kib", "server_peak_kib", "client_start_kib", "server_start_kib", "error"]
    with open(os.path.join(folder, "results.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(harness.results)
    # Only a full run of every shape replaces the committed figures; a smoke or a partial run stays in out/bench.
    no_docs = args.no_docs or harness.shapes != set(SHAPES)
    chart_name = "benchmarks.png"
    chart_path = os.path.join(harness.repo, "docs", chart_name) if not no_docs else os.path.join(folder, chart_name)
    chart(rows, chart_path)
    section = markdown(rows, harness.facts, harness, args, chart_name)
    with open(os.path.join(folder, "results.md"), "w") as file:
        file.write(section + "\n")
    print(section)
    if no_docs:
        return
    doc_path = os.path.join(harness.repo, "docs", "benchmarks.md")
    doc = open(doc_path).read()
    if BEGIN_MARKER.split(" (")[0] in doc and END_MARKER in doc:
        start = doc.index(BEGIN_MARKER.split(" (")[0])
        end = doc.index(END_MARKER) + len(END_MARKER)
        doc = doc[:start] + section + doc[end:]
    else:
        doc = doc.rstrip() + "\n\n## Latest harness run\n\n" + section + "\n"
    with open(doc_path, "w") as file:
        file.write(doc)
    log(f"wrote {doc_path} and {chart_path}")


def series_markdown(saved_runs, command_line):
    """The targets of several full runs side by side, each judged on the median of the runs' values. One run on this
    machine moves by as much as a change does (a peer's 1 GiB median moved from 0.68 to 1.01 s between runs of the same
    code), so a verdict that holds across runs is the one to trust."""
    per_run = [{t.label: t for t in targets(run["rows"], run["facts"])} for run in saved_runs]
    labels = list(dict.fromkeys(label for run in per_run for label in run))
    dates = ", ".join(run["facts"].get("finished_utc", "?") for run in saved_runs)
    commits = sorted({run["harness"].get("commit", "?") for run in saved_runs})
    out = [SERIES_BEGIN_MARKER, "",
           f"{len(saved_runs)} full runs (`{command_line}`), finished {dates}, commit {', '.join(commits)}. Each run is a "
           "whole harness run as described under \"Latest harness run\" (fresh servers, clients and peers); the verdict "
           "is taken on the median of the runs' values. CPU rows give FileShare's CPU over the peer's.", "",
           "| target | " + " | ".join(f"run {i + 1}" for i in range(len(saved_runs))) + " | median | verdict |",
           "|---|" + "---|" * (len(saved_runs) + 2)]
    for label in labels:
        measured = [run.get(label) for run in per_run]
        present = [t for t in measured if t is not None and t.value is not None]
        cells = " | ".join(t.format(t.value) if t is not None and t.value is not None else "-" for t in measured)
        if not present:
            out.append(f"| {label} | {cells} | - | {verdict(None, 0)} |")
            continue
        middle = present[0]._replace(value=statistics.median(t.value for t in present))
        out.append(f"| {label} | {cells} | {middle.format(middle.value)} | {middle.verdict} |")
    out += ["", "Per-run results: `out/bench/run-<n>.json` (not committed); the rows of the last run are below.", "",
            SERIES_END_MARKER]
    return "\n".join(out)


def write_series(repo, result_paths, command_line):
    saved_runs = [json.load(open(path)) for path in result_paths]
    section = series_markdown(saved_runs, command_line)
    print(section)
    doc_path = os.path.join(repo, "docs", "benchmarks.md")
    doc = open(doc_path).read()
    if SERIES_BEGIN_MARKER in doc and SERIES_END_MARKER in doc:
        start = doc.index(SERIES_BEGIN_MARKER)
        doc = doc[:start] + section + doc[doc.index(SERIES_END_MARKER) + len(SERIES_END_MARKER):]
    else:
        latest = doc.index("## Latest harness run")
        doc = doc[:latest] + "## Targets across runs\n\n" + section + "\n\n" + doc[latest:]
    with open(doc_path, "w") as file:
        file.write(doc)
    log(f"wrote the series of {len(saved_runs)} runs into {doc_path}")


def rewrite_from(results_path):
    """Writes the chart and the docs section again from a saved results.json (after a change to this report)."""
    import argparse
    saved = json.load(open(results_path))
    harness = argparse.Namespace(results=saved["runs"], facts=saved["facts"], **dict(saved["harness"], shapes=set(saved["harness"]["shapes"])))
    harness.commit = saved["harness"].get("commit", "unknown")
    write(harness, argparse.Namespace(no_docs=False, command_line=saved["harness"]["command_line"]))


if __name__ == "__main__":
    import sys
    if sys.argv[1] == "--series":  # report.py --series "<command line>" run-1.json run-2.json ...
        write_series(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), sys.argv[3:], sys.argv[2])
    else:
        rewrite_from(sys.argv[1])

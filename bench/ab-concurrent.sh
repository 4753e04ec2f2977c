#!/usr/bin/env bash
# Two builds of the client side by side: N concurrent downloads of M MiB each (one Get-RemoteFile -ThrottleLimit N;
# 200 x 10 MiB unless told, 1 x 1024 for one large file) from one server, each build in fresh client pwsh processes
# taking turns (A, B, A, B ...); each process makes two untimed downloads of the batch and then four timed ones, and
# prints its wall time and its own CPU time for each; the medians of each build close the output.
# The server is the first build (a protocol change needs the new server for either build to use it). Each process's
# last batch is checked by SHA-256 once the process has ended (hashing inside the process between timed runs would add
# its own CPU to theirs).
# Usage: bench/ab-concurrent.sh <module folder A> <module folder B> [pairs] [downloads] [MiB]   (module folder: out/FileShare/<version>)
set -euo pipefail
module_a=$(cd "$1" && pwd); module_b=$(cd "$2" && pwd); pairs=${3:-3}; count=${4:-200}; mib=${5:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
pwsh_dll=$(cd "$repo" && dotnet pwsh -NoProfile -c '$PSHOME')/pwsh.dll
work=$(mktemp -d /dev/shm/fileshare-ab.XXXX)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/share/conc" "$work/out"
head -c $((mib * 1024 * 1024)) /dev/urandom > "$work/share/source.bin"
expected=$(sha256sum "$work/share/source.bin" | cut -d' ' -f1)
for i in $(seq -w 1 "$count"); do ln "$work/share/source.bin" "$work/share/conc/c$i.bin"; done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dotnet "$pwsh_dll" -NoProfile -c "Import-Module '$module_a/FileShare.psd1'; Start-FileShareServer -Port $port -Path '$work/share' -BindAddress 127.0.0.1 -MaxConnections 1100 -MaxConnectionsPerAddress 1100 -Wait" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

client() {  # module folder, label
  dotnet "$pwsh_dll" -NoProfile -NonInteractive -c "
    \$ErrorActionPreference = 'Stop'
    Import-Module '$1/FileShare.psd1'; \$ProgressPreference = 'SilentlyContinue'
    \$items = 1..$count | ForEach-Object { [pscustomobject]@{ Name = ('conc/c{0:d${#count}}.bin' -f \$_); ComputerName = '127.0.0.1'; Port = $port } }
    \$process = [Diagnostics.Process]::GetCurrentProcess()
    foreach (\$run in 1..6) {
      Remove-Item '$work/out/*' -Recurse -Force -ErrorAction Ignore
      \$process.Refresh(); \$cpu = \$process.TotalProcessorTime; \$clock = [Diagnostics.Stopwatch]::StartNew()
      \$items | Get-RemoteFile -ThrottleLimit $count -Destination '$work/out' | Out-Null
      \$wall = \$clock.Elapsed.TotalSeconds; \$process.Refresh()
      if (\$run -gt 2) { '{0} wall={1:n3} cpu={2:n3}' -f '$2', \$wall, (\$process.TotalProcessorTime - \$cpu).TotalSeconds }
    }"
  intact=$(sha256sum "$work"/out/conc/*.bin | grep -c "^$expected ")
  [ "$intact" -eq "$count" ] || { echo "$2: only $intact of $count files arrived intact" >&2; exit 1; }
}
for _ in $(seq "$pairs"); do client "$module_a" A; client "$module_b" B; done | tee "$work/runs.txt"
for build in A B; do
  for field in wall cpu; do
    median=$(grep "^$build " "$work/runs.txt" | sed "s/.* $field=\([0-9.]*\).*/\1/" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    printf '%s median %s %s s\n' "$build" "$field" "$median"
  done
done

#!/usr/bin/env bash
# Where a FileShare client's CPU goes: `perf record` on a warm Get-RemoteFile pwsh (JIT symbols through
# DOTNET_PerfMapEnabled; W^X off so perf can read the JIT code), for one large file and for many small ones. Prints the top symbols of each.
# Usage: bench/profile-client.sh [size-MiB] [small-files] [warm-up runs]   (needs perf; run ./build.ps1 Build first)
# A fresh pwsh needs several runs before tiered compilation settles (its background JIT thread took half of the
# samples after one warm-up run of 2,000 small files), hence five warm-up runs by default.
set -euo pipefail
size_mib=${1:-1024}
small_count=${2:-2000}
warmups=${3:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
work=$(mktemp -d /dev/shm/fileshare-profile.XXXX)
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

module=$(ls -d "$repo"/out/FileShare/*/FileShare.psd1 | head -1)
pwsh_dll=$(cd "$repo" && dotnet pwsh -NoProfile -c '$PSHOME')/pwsh.dll
mkdir -p "$work/share/small" "$work/out"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/share/big.bin"
for i in $(seq -w 1 "$small_count"); do head -c 4096 /dev/urandom > "$work/share/small/f$i.bin"; done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

dotnet "$pwsh_dll" -NoProfile -c "Import-Module '$module'; Start-FileShareServer -Port $port -Path '$work/share' -BindAddress 127.0.0.1 -Wait" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

profile() {  # name, warm-up script, measured script (run 3 times)
  local name=$1 warmup=$2 measured=$3
  DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 dotnet "$pwsh_dll" -NoProfile -NonInteractive -c "
    Import-Module '$module'; \$ProgressPreference = 'SilentlyContinue'
    foreach (\$i in 1..$warmups) { Remove-Item '$work/out/*' -Recurse -Force -ErrorAction Ignore; $warmup }
    New-Item '$work/$name.ready' | Out-Null
    while (-not (Test-Path '$work/$name.go')) { Start-Sleep -Milliseconds 20 }
    \$t = [Diagnostics.Stopwatch]::StartNew()
    foreach (\$i in 1..3) { Remove-Item '$work/out/*' -Recurse -Force -ErrorAction Ignore; $measured }
    Write-Host \"$name: 3 runs in \$(\$t.Elapsed.TotalSeconds) s\"
  " &
  local client=$!
  while [ ! -e "$work/$name.ready" ]; do sleep 0.05; done
  perf record -F 1999 -g -p "$client" -o "$work/$name.data" 2> /dev/null &
  local recorder=$!
  sleep 0.5
  touch "$work/$name.go"
  wait "$client"
  wait "$recorder" || true
  echo "== $name: by library (self time, all threads of the client pwsh)"
  perf report -i "$work/$name.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep '%' | grep -v '^#' | head -12 || true
  echo "== $name: top symbols"
  perf report -i "$work/$name.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null | grep '%' | grep -v '^#' | head -30 || true
  echo "== $name: top symbols outside the JIT thread"
  perf report -i "$work/$name.data" --no-children -g none --comm ".NET TP Worker,Pipeline Execut,.NET Sockets" --sort dso,sym --stdio 2>/dev/null | grep "%" | grep -v "^#" | head -40 || true
  echo "== $name: by thread"
  perf report -i "$work/$name.data" --no-children -g none --sort comm --stdio 2>/dev/null | grep '%' | grep -v '^#' | head -10 || true
}

big="Get-RemoteFile big.bin -ComputerName 127.0.0.1 -Port $port -Destination '$work/out'"
profile large "$big" "$big"
names=$(cd "$work/share" && ls small | sed "s/.*/'small\/&'/" | paste -sd,)
small="Get-RemoteFile -Name @($names) -ComputerName 127.0.0.1 -Port $port -ThrottleLimit 1 -Destination '$work/out'"
profile small "$small" "$small"

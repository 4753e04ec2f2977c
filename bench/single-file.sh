#!/usr/bin/env bash
# One large file over loopback, to a file: FileShare (server job + Get-RemoteFile in one warm pwsh) against
# nginx (sendfile on) + curl, interleaved, several rounds. Data and downloads live on tmpfs where available.
# Usage: bench/single-file.sh [size-MiB] [rounds]     (installs nginx with apt-get when missing)
set -euo pipefail
size_mib=${1:-1024}
rounds=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
base=/dev/shm
[ -w "$base" ] || { base=$(mktemp -d); echo "no tmpfs at /dev/shm; using $base (disk)"; }
work=$(mktemp -d "$base/fileshare-bench.XXXX")
trap 'nginx -p "$work/nginx" -c nginx.conf -s stop 2>/dev/null || true; kill $fs_pid 2>/dev/null || true; rm -rf "$work"' EXIT

command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

mkdir -p "$work/share" "$work/nginx/logs" "$work/out"
chmod 755 "$work" "$work/share"  # nginx workers run unprivileged
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/share/big.bin"
chmod 644 "$work/share/big.bin"
source_hash=$(sha256sum "$work/share/big.bin" | cut -d' ' -f1)

cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon on;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  server { listen 127.0.0.1:18080; root $work/share; }
}
CONF
nginx -p "$work/nginx" -c nginx.conf

dotnet pwsh ./build.ps1 Build >/dev/null
pwsh_dll=$(dotnet pwsh -NoProfile -c '$PSHOME')/pwsh.dll
# A warm client session: it reads one line per round from a fifo, downloads, answers the seconds on another fifo.
mkfifo "$work/fifo" "$work/answers"
dotnet "$pwsh_dll" -NoProfile -NonInteractive -c "
  Import-Module '$repo/out/FileShare/$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props")/FileShare.psd1'
  \$job = Start-FileShareServer -Port 18081 -Path '$work/share' -BindAddress 127.0.0.1
  \$ProgressPreference = 'SilentlyContinue'
  Get-RemoteFile big.bin -Port 18081 -Destination '$work/out/warmup'
  Remove-Item '$work/out/warmup' -Recurse
  \$answers = [IO.StreamWriter]::new('$work/answers')
  \$answers.AutoFlush = \$true
  \$answers.WriteLine('ready')
  foreach (\$line in [IO.File]::ReadLines('$work/fifo')) {
    \$t = [Diagnostics.Stopwatch]::StartNew()
    Get-RemoteFile big.bin -Port 18081 -Destination '$work/out/fs' -ComputerName 127.0.0.1
    \$answers.WriteLine(('{0:0.000}' -f \$t.Elapsed.TotalSeconds))
  }
  Stop-FileShareServer -All
" > "$work/fs.out" 2>&1 &
fs_pid=$!
exec 4< "$work/answers" 3> "$work/fifo"
read -r ready <&4

declare -a fs_times curl_times
for i in $(seq "$rounds"); do
  rm -f "$work/out/curl.bin"
  start=$(date +%s.%N)
  curl -sf -o "$work/out/curl.bin" http://127.0.0.1:18080/big.bin
  curl_times+=("$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')")
  [ "$(sha256sum "$work/out/curl.bin" | cut -d' ' -f1)" = "$source_hash" ] || { echo "curl download corrupt"; exit 1; }
  echo go >&3
  read -r seconds <&4
  fs_times+=("$seconds")
  [ "$(sha256sum "$work/out/fs/big.bin" | cut -d' ' -f1)" = "$source_hash" ] || { echo "FileShare download corrupt"; exit 1; }
  # Keep tmpfs use flat: on this VM, memory pressure from leftover copies slows every tool by 2x.
  rm -f "$work/out/fs/big.bin" "$work/out/curl.bin"
done
exec 3>&- 4<&-

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mib_s() { awk -v s="$1" -v m="$size_mib" 'BEGIN { printf "%.0f", m / s }'; }
fs_med=$(median "${fs_times[@]}"); curl_med=$(median "${curl_times[@]}")
echo "file: $size_mib MiB on $( [ "$base" = /dev/shm ] && echo tmpfs || echo disk ), rounds: $rounds, all downloads SHA-256 verified"
echo "FileShare Get-RemoteFile (warm pwsh): median $fs_med s = $(mib_s "$fs_med") MiB/s  [runs: ${fs_times[*]}]"
echo "nginx + curl:                        median $curl_med s = $(mib_s "$curl_med") MiB/s  [runs: ${curl_times[*]}]"
awk -v a="$fs_med" -v b="$curl_med" 'BEGIN { printf "ratio FileShare / (nginx + curl): %.2fx\n", b / a }'

#!/usr/bin/env python3
"""What a progress record costs where it is rendered: a pwsh in a pty (cursor-position queries answered, as a
terminal does) writes N Write-Progress records like Get-RemoteFile's overall bar, and prints wall and CPU time.
Usage: python3 bench/progress-cost.py [pwsh command...]   (default: dotnet pwsh, from inside the repo)"""
import os
import pty
import re
import select
import sys

SCRIPT = r'''
$process = [Diagnostics.Process]::GetCurrentProcess()
foreach ($count in 0, 40, 200, 1000) {
    $process.Refresh(); $cpu = $process.TotalProcessorTime.TotalMilliseconds; $clock = [Diagnostics.Stopwatch]::StartNew()
    for ($i = 0; $i -lt $count; $i++) {
        Write-Progress -Activity 'Get-RemoteFile' -Status "0 of 1 files; $i MiB of 1.0 GiB at 900 MiB/s" -PercentComplete ($i % 100) -SecondsRemaining 1
    }
    if ($count) { Write-Progress -Activity 'Get-RemoteFile' -Completed }
    $process.Refresh()
    $line = 'records={0} wall_ms={1:F1} cpu_ms={2:F1}' -f $count, $clock.Elapsed.TotalMilliseconds, ($process.TotalProcessorTime.TotalMilliseconds - $cpu)
    [Console]::Error.WriteLine($line)
}
'''


def main():
    command = sys.argv[1:] or ["dotnet", "pwsh"]
    pid, terminal = pty.fork()
    if pid == 0:
        os.execvp(command[0], command + ["-NoProfile", "-c", SCRIPT])
    seen = b""
    while select.select([terminal], [], [], 60)[0]:
        try:
            data = os.read(terminal, 65536)
        except OSError:
            break
        if not data:
            break
        seen += data
        for _ in range(data.count(b"\x1b[6n")):
            os.write(terminal, b"\x1b[1;1R")
    os.waitpid(pid, 0)
    for line in re.findall(rb"records=\d+ wall_ms=[\d.]+ cpu_ms=[\d.]+", seen):
        print(line.decode())


if __name__ == "__main__":
    main()

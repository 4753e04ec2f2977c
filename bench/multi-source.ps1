#!/usr/bin/env pwsh
<#
.SYNOPSIS
    One large file from one server against the same file from three servers at once, over loopback.
.DESCRIPTION
    Builds the module, writes a random file to tmpfs (/dev/shm when writable), hard-links it into three shares, and
    starts three servers, each in its own pwsh process (Start-Job), so they do not share the client's process.
    Then, alternating, downloads it with Get-RemoteFile from one server and from all three (-Source), Rounds times
    each, every download SHA-256-checked outside the timed part and deleted before the next. Prints each time and
    the medians. Usage: dotnet pwsh bench/multi-source.ps1 [-SizeMiB 1024] [-Rounds 5]
#>
param([int] $SizeMiB = 1024, [int] $Rounds = 5)
$ErrorActionPreference = 'Stop'
$repo = Split-Path $PSScriptRoot
dotnet pwsh (Join-Path $repo 'build.ps1') Build | Out-Null
$manifest = (Get-ChildItem (Join-Path $repo 'out/FileShare') -Recurse -Filter FileShare.psd1 | Select-Object -First 1).FullName
Import-Module $manifest
$ProgressPreference = 'SilentlyContinue'

$base = if (Test-Path /dev/shm -PathType Container) { '/dev/shm' } else { [IO.Path]::GetTempPath() }
$work = Join-Path $base ("fileshare-multi-{0}" -f [guid]::NewGuid().ToString('n').Substring(0, 8))
$jobs = @()
try {
    $original = Join-Path $work 'original/big.bin'
    $null = New-Item -ItemType Directory (Split-Path $original)
    $stream = [IO.File]::Create($original)
    $block = [byte[]]::new(1MB)
    for ($i = 0; $i -lt $SizeMiB; $i++) { [Random]::Shared.NextBytes($block); $stream.Write($block, 0, $block.Length) }
    $stream.Dispose()
    $expected = (Get-FileHash $original -Algorithm SHA256).Hash
    $shares = foreach ($i in 1..3) {
        $folder = New-Item -ItemType Directory (Join-Path $work "share$i")
        $null = New-Item -ItemType HardLink -Path (Join-Path $folder 'big.bin') -Target $original
        $folder.FullName
    }

    $ports = 18091..18093
    $jobs = for ($i = 0; $i -lt 3; $i++) {
        Start-Job -ArgumentList $manifest, $ports[$i], $shares[$i] -ScriptBlock {
            param($Manifest, $Port, $Share)
            Import-Module $Manifest
            Start-FileShareServer -Port $Port -Path $Share -BindAddress 127.0.0.1 -Wait
        }
    }
    foreach ($port in $ports) {
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while (-not (Get-RemoteFileList -ComputerName 127.0.0.1 -Port $port -ErrorAction SilentlyContinue)) {
            if ([DateTime]::UtcNow -gt $deadline) { throw "The server on port $port did not start." }
            Start-Sleep -Milliseconds 200
        }
    }

    # Every server hashes the file once; the rounds then measure transfer and client-side verification only.
    $null = Get-RemoteFileList -ComputerName 127.0.0.1 -Port $ports -Hash
    $out = Join-Path $work 'out'
    $sources = @{ 'one server' = @{}; 'three servers' = @{ Source = "127.0.0.1:$($ports[1])", "127.0.0.1:$($ports[2])" } }
    $times = @{ 'one server' = @(); 'three servers' = @() }
    foreach ($round in 1..$Rounds) {
        foreach ($case in 'one server', 'three servers') {
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $extra = $sources[$case]
            $file = Get-RemoteFile big.bin -ComputerName 127.0.0.1 -Port $ports[0] -Destination $out -PassThru @extra
            $seconds = $clock.Elapsed.TotalSeconds
            if ((Get-FileHash $file.FullName -Algorithm SHA256).Hash -ne $expected) { throw "SHA-256 mismatch ($case, round $round)" }
            $split = ($file.Sources | ForEach-Object { '{0}={1:0}MiB' -f $_.Endpoint.Split(':')[1], ($_.Bytes / 1MB) }) -join ' '
            '{0,-13} round {1}: {2:0.000} s = {3,6:0} MiB/s  {4}' -f $case, $round, $seconds, ($SizeMiB / $seconds), $split
            $times[$case] += $seconds
            Remove-Item $file.FullName
        }
    }

    $median = { param($values) $sorted = @($values | Sort-Object); $sorted[[int][Math]::Floor($sorted.Count / 2)] }
    $one = & $median $times['one server']
    $three = & $median $times['three servers']
    ''
    'median, one server:    {0:0.000} s = {1:0} MiB/s' -f $one, ($SizeMiB / $one)
    'median, three servers: {0:0.000} s = {1:0} MiB/s' -f $three, ($SizeMiB / $three)
    'ratio (one / three):   {0:0.00}x' -f ($one / $three)
}
finally {
    $jobs | Remove-Job -Force -ErrorAction SilentlyContinue
    Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
}

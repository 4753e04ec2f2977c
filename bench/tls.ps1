#!/usr/bin/env pwsh
# What TLS costs: one large file over loopback, from a plaintext server (sendfile) and from a TLS server (copied
# through SslStream), to a file, with Get-RemoteFile in one warm session. Rounds alternate; prints the median.
# Usage: dotnet pwsh bench/tls.ps1 [-SizeMiB 1024] [-Rounds 3]     (build first: dotnet pwsh ./build.ps1 Build)
param([int] $SizeMiB = 1024, [int] $Rounds = 3)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$repo = Split-Path $PSScriptRoot
$version = ([xml](Get-Content "$repo/Directory.Build.props")).Project.PropertyGroup.Version
Import-Module "$repo/out/FileShare/$version/FileShare.psd1"

$base = if (Test-Path /dev/shm) { '/dev/shm' } else { [IO.Path]::GetTempPath() }
$work = New-Item -ItemType Directory -Path (Join-Path $base "fileshare-tls-$PID")
try {
    $share = New-Item -ItemType Directory -Path "$work/share"
    $file = [IO.File]::Create("$share/big.bin")
    $chunk = [byte[]]::new(1MB)
    for ($i = 0; $i -lt $SizeMiB; $i++) { [Security.Cryptography.RandomNumberGenerator]::Fill($chunk); $file.Write($chunk, 0, $chunk.Length) }
    $file.Dispose()
    $expected = (Get-FileHash "$share/big.bin").Hash

    $certificate = [FileShare.Server.ServerCertificate]::LoadOrCreateSelfSigned('localhost', "$work/certificates")
    $thumbprint = [FileShare.Server.ServerCertificate]::Sha256Thumbprint($certificate)
    $plain = Start-FileShareServer -Port 0 -Path $share -BindAddress 127.0.0.1
    $tls = Start-FileShareServer -Port 0 -Path $share -BindAddress 127.0.0.1 -Certificate $certificate 6>$null
    $runs = @{
        plaintext = { Get-RemoteFile big.bin -ComputerName 127.0.0.1 -Port $plain.Port -Destination "$work/out" }
        tls       = { Get-RemoteFile big.bin -ComputerName 127.0.0.1 -Port $tls.Port -Destination "$work/out" -CertificateThumbprint $thumbprint }
    }
    $seconds = @{ plaintext = @(); tls = @() }
    foreach ($round in 0..$Rounds) {
        foreach ($name in 'plaintext', 'tls') {
            Remove-Item "$work/out" -Recurse -ErrorAction Ignore
            $clock = [Diagnostics.Stopwatch]::StartNew()
            & $runs[$name]
            $elapsed = $clock.Elapsed.TotalSeconds
            if ((Get-FileHash "$work/out/big.bin").Hash -ne $expected) { throw "$name round ${round}: SHA-256 differs" }
            # Round 0 warms up: the server hashes the file once, the JIT compiles both paths.
            if ($round -gt 0) { $seconds[$name] += $elapsed }
        }
    }

    "{0} MiB over loopback, {1} rounds each, median; every download SHA-256 verified" -f $SizeMiB, $Rounds
    foreach ($name in 'plaintext', 'tls') {
        $median = ($seconds[$name] | Sort-Object)[[int][math]::Floor($seconds[$name].Count / 2)]
        "{0,-10} {1,6:0.00} s  {2,7:0} MiB/s   (rounds: {3})" -f $name, $median, ($SizeMiB / $median), (($seconds[$name] | ForEach-Object { '{0:0.00}' -f $_ }) -join ', ')
    }
}
finally {
    Get-Job | Where-Object { $_ -is [FileShare.PowerShell.Jobs.FileShareServerJob] } | Stop-FileShareServer
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
}

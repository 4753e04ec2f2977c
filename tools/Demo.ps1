<#
.SYNOPSIS
    The main job: ten servers, every file downloaded into ./localStorage with one pipeline, every SHA-256 checked.
.DESCRIPTION
    Run through `./build.ps1 Demo`. Works in -WorkPath (out/demo), fills d<PORT> sample folders, shares them on
    5000..5009 (or the next free block of ten ports), downloads everything with
    `Get-RemoteFileList -Recurse | Get-RemoteFile`, verifies, prints a summary and exits 0 only if every file matched.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $WorkPath,
    [long] $LargeFileBytes = 1GB
)

$ErrorActionPreference = 'Stop'
# Import by name, as a user would once out/ is on PSModulePath.
$env:PSModulePath = (Split-Path (Split-Path $ModulePath)) + [System.IO.Path]::PathSeparator + $env:PSModulePath
Import-Module FileShare -Force

function Test-PortFree([int] $Port) {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::IPv6Any, $Port)
    $listener.Server.DualMode = $true
    try { $listener.Start(); $true } catch { $false } finally { $listener.Stop() }
}

function Find-PortBlock {
    for ($first = 5000; $first -lt 65000; $first += 10) {
        $ports = $first..($first + 9)
        if (@($ports | Where-Object { -not (Test-PortFree $_) }).Count -eq 0) { return $ports }
    }
    throw 'No block of ten free ports found.'
}

function New-SampleFile([string] $Path, [long] $Length, [int] $Seed) {
    New-Item -ItemType Directory -Path (Split-Path $Path) -Force | Out-Null
    $random = [System.Random]::new($Seed)
    $block = [byte[]]::new([Math]::Min([Math]::Max($Length, 1), 1MB))
    $stream = [System.IO.File]::Create($Path)
    try {
        $left = $Length
        while ($left -gt 0) {
            $random.NextBytes($block)
            $count = [int][Math]::Min($left, $block.Length)
            $stream.Write($block, 0, $count)
            $left -= $count
        }
    } finally { $stream.Dispose() }
}

function Initialize-Share([string] $Root, [int] $Port, [bool] $WithLargeFile) {
    if (Test-Path $Root) { Remove-Item $Root -Recurse -Force }
    New-Item -ItemType Directory -Path $Root | Out-Null
    Set-Content -Path (Join-Path $Root "notes-$Port.txt") -Value (1..200 | ForEach-Object { "line $_ served from port $Port" })
    New-SampleFile (Join-Path $Root "data-$Port.bin") (3MB + $Port) $Port
    New-Item -ItemType File -Path (Join-Path $Root "empty-$Port.dat") | Out-Null
    Set-Content -Path (Join-Path $Root "héllo wörld $Port.txt") -Value "unicode and spaces: ✓ $Port"
    New-SampleFile (Join-Path $Root "sub-$Port/nested/chunk edge $Port.bin") (1MB + 1) ($Port + 1)
    @{ port = $Port; kind = 'json sample' } | ConvertTo-Json | Set-Content (Join-Path $Root "sub-$Port/meta-$Port.json")
    if ($WithLargeFile) {
        Write-Host "Creating a $([Math]::Round($LargeFileBytes / 1GB, 2)) GiB sample file..."
        New-SampleFile (Join-Path $Root 'large-1GiB.bin') $LargeFileBytes 42
    }
}

New-Item -ItemType Directory -Path $WorkPath -Force | Out-Null
Push-Location $WorkPath
$servers = @()
try {
    $ports = Find-PortBlock
    if ($ports[0] -ne 5000) { Write-Host "Ports 5000..5009 are not all free; using $($ports[0])..$($ports[-1]) instead." }
    foreach ($port in $ports) { Initialize-Share (Join-Path $WorkPath "d$port") $port ($port -eq $ports[0]) }
    if (Test-Path localStorage) { Remove-Item localStorage -Recurse -Force }

    $servers = Start-FileShareServer -Port $ports
    Write-Host "Started $($servers.Count) servers:"
    $servers | Format-Table | Out-Host

    $listing = Get-RemoteFileList -Port $ports -Recurse
    Write-Host "Listed $($listing.Count) files on $($ports.Count) servers."
    $listing | Select-Object -First 12 | Format-Table | Out-Host

    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $listing | Get-RemoteFile -ThrottleLimit 8
    $clock.Stop()

    $rows = foreach ($group in $listing | Group-Object Port) {
        $root = Join-Path $WorkPath "d$($group.Name)"
        $matched = 0
        foreach ($file in $group.Group) {
            $source = (Get-FileHash -Algorithm SHA256 -LiteralPath (Join-Path $root $file.Name)).Hash
            $local = Join-Path $WorkPath "localStorage/$($file.Name)"
            if ((Test-Path -LiteralPath $local) -and (Get-FileHash -Algorithm SHA256 -LiteralPath $local).Hash -eq $source) { $matched++ }
        }
        [pscustomobject]@{
            Port     = [int]$group.Name
            Files    = $group.Count
            Bytes    = [long]($group.Group | Measure-Object Length -Sum).Sum
            Verified = "$matched/$($group.Count)"
            Ok       = $matched -eq $group.Count
        }
    }

    $rows | Format-Table Port, Files, Bytes, Verified | Out-Host
    $bytes = [long]($rows | Measure-Object Bytes -Sum).Sum
    $seconds = $clock.Elapsed.TotalSeconds
    [pscustomobject]@{
        Files   = [int]($rows | Measure-Object Files -Sum).Sum
        Bytes   = $bytes
        Seconds = [Math]::Round($seconds, 2)
        'MiB/s' = [Math]::Round($bytes / 1MB / $seconds, 1)
    } | Format-Table | Out-Host

    $failed = @($rows | Where-Object { -not $_.Ok })
    if ($failed.Count -gt 0) {
        Write-Host "FAILED: SHA-256 mismatch or missing file on port(s) $($failed.Port -join ', ')."
        exit 1
    }
    Write-Host "All $(($rows | Measure-Object Files -Sum).Sum) files verified by SHA-256."
}
finally {
    if ($servers) { $servers | Stop-FileShareServer; $servers | Remove-Job }
    Pop-Location
}
exit 0

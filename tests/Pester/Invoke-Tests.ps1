<#
.SYNOPSIS
    Runs the FileShare Pester scenario tests against a built module.
.DESCRIPTION
    Imports Pester 5.7.1 from the NuGet global packages folder (restored from Pester.Restore.csproj, which build.ps1
    Test does; this script restores it too when it is missing), points the tests at -ModulePath through
    $env:FILESHARE_MODULE_PATH, runs every *.Tests.ps1 beside this script with detailed output, and writes
    {"Passed":n,"Failed":n,"Skipped":n,"Failures":[...]} to -SummaryPath. Exits 1 when anything failed.
.EXAMPLE
    dotnet pwsh -NoProfile -File tests/Pester/Invoke-Tests.ps1 -ModulePath out/FileShare/0.1.0 -SummaryPath /tmp/pester.json
#>
[CmdletBinding()]
param(
    # The built module folder, e.g. out/FileShare/0.1.0 (the one holding FileShare.psd1).
    [Parameter(Mandatory)]
    [string] $ModulePath,

    # Where to write the JSON summary.
    [Parameter(Mandatory)]
    [string] $SummaryPath,

    # Only the test files whose names match (e.g. 'Scenario'); all by default.
    [string[]] $Filter = @('*')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ModulePath = [IO.Path]::GetFullPath($ModulePath, (Get-Location).ProviderPath)
$SummaryPath = [IO.Path]::GetFullPath($SummaryPath, (Get-Location).ProviderPath)
if (-not (Test-Path (Join-Path $ModulePath 'FileShare.psd1'))) {
    throw "No FileShare.psd1 in '$ModulePath'; build first: dotnet pwsh ./build.ps1 Build"
}

$pesterVersion = '5.7.1'
$globalPackages = (& dotnet nuget locals global-packages --list) -replace '^\s*global-packages:\s*', ''
if ($LASTEXITCODE -ne 0 -or -not $globalPackages) { throw 'Could not find the NuGet global packages folder (dotnet nuget locals global-packages --list).' }
$pesterManifest = Join-Path $globalPackages.Trim() "pester/$pesterVersion/tools/Pester.psd1"
if (-not (Test-Path $pesterManifest)) {
    & dotnet restore (Join-Path $PSScriptRoot 'Pester.Restore.csproj') --nologo -v quiet
    if ($LASTEXITCODE -ne 0 -or -not (Test-Path $pesterManifest)) { throw "Pester $pesterVersion is not in '$globalPackages' and could not be restored." }
}

Import-Module $pesterManifest -Force
$env:FILESHARE_MODULE_PATH = $ModulePath

$files = Get-ChildItem -Path $PSScriptRoot -Filter '*.Tests.ps1' |
    Where-Object { $name = $_.Name; $Filter.Where({ $name -like "*$_*" }).Count -gt 0 } |
    Sort-Object Name
$config = New-PesterConfiguration
$config.Run.Path = @($files.FullName)
$config.Run.PassThru = $true
$config.Run.Exit = $false
$config.Output.Verbosity = 'Detailed'
$config.Should.ErrorAction = 'Stop'

$clock = [Diagnostics.Stopwatch]::StartNew()
try {
    $result = Invoke-Pester -Configuration $config
}
finally {
    # Child scripts and report files of common.ps1 (see $FileShareTestTemp there).
    Remove-Item -LiteralPath (Join-Path ([IO.Path]::GetTempPath()) "fileshare-pester-$PID") -Recurse -Force -ErrorAction Ignore
}
$clock.Stop()

# A failing BeforeAll/AfterAll or a file that does not even load fails its block or container, not a test.
$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
# Named with their first error line in the summary: CI logs keep only their tail.
function Get-FailureLine($Item, [string] $Name) {
    "${Name}: $("$($Item.ErrorRecord | Select-Object -First 1)".Trim() -split '\r?\n' | Select-Object -First 1)"
}
$failures = @($result.Failed | ForEach-Object { Get-FailureLine $_ $_.ExpandedPath }) +
    @($result.FailedBlocks | ForEach-Object { Get-FailureLine $_ ($_.Path -join '.') }) +
    @($result.FailedContainers | ForEach-Object { Get-FailureLine $_ $_.Item })
$summary = [ordered]@{ Passed = $result.PassedCount; Failed = $failed; Skipped = $result.SkippedCount; Failures = $failures }
$null = New-Item -ItemType Directory -Path (Split-Path $SummaryPath) -Force
$summary | ConvertTo-Json -Compress | Set-Content -LiteralPath $SummaryPath
Write-Host ("Pester: {0} passed, {1} failed, {2} skipped in {3:0.0} s" -f $summary.Passed, $summary.Failed, $summary.Skipped, $clock.Elapsed.TotalSeconds)
exit ([int]($failed -gt 0))

<#
.SYNOPSIS
    Builds, tests and demonstrates the FileShare module.
.DESCRIPTION
    Build  (default) compiles Release and lays the module out in out/FileShare/<version>/. Its assemblies carry,
           besides their net8.0 IL, ReadyToRun code for the .NET 10 of PowerShell 7.6 on -Runtime (this machine's
           platform by default), which skips most of the JIT at a cold start; such assemblies load only on that
           platform. -Runtime portable gives IL only, as loads on every platform and PowerShell 7.4+.
    Test   builds, runs the xunit suites, then Pester against the built module; ends with "Tests: N passed, N failed".
    Demo   builds, then shares ten folders and downloads every file from them, verifying each SHA-256.
    Package builds (portable unless -Runtime is given: one package serves every platform), then makes
           out/packages/FileShare.<version>.nupkg for Install-PSResource / Install-Module.
    Bench  builds, then runs bench/run.py: FileShare against nginx + curl, aria2c, HttpClient, Invoke-WebRequest and
           an iperf3 ceiling on tmpfs (installs missing peers with apt-get); writes out/bench/ and, unless -Quick,
           the results section and chart of docs/benchmarks.md. About 15 minutes; -Quick is a one-minute smoke;
           -Runs N repeats the whole run and writes every target per run with the median of the runs.
    Clean  removes build output.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Build', 'Test', 'Demo', 'Package', 'Bench', 'Clean')]
    [string] $Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # Demo only: size of the large sample file.
    [long] $DemoLargeFileBytes = 1GB,

    # The platform whose native code the assemblies carry: a .NET runtime identifier (linux-x64, win-arm64, ...) or
    # 'portable' for IL only. Default: this machine's, except for Package.
    [string] $Runtime,

    # Bench only: the one-minute smoke (small sizes, two rounds; leaves docs/ alone).
    [switch] $Quick,

    # Bench only: whole runs one after another; docs/benchmarks.md then also gets every target per run and its median.
    [ValidateRange(1, 20)]
    [int] $Runs = 1
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$repo = $PSScriptRoot
$version = (Select-Xml -Path "$repo/Directory.Build.props" -XPath '//Version').Node.InnerText
$outRoot = Join-Path $repo 'out'
$moduleDir = Join-Path $outRoot "FileShare/$version"
if (-not $Runtime -and $Task -eq 'Package') { $Runtime = 'portable' }
if (-not $Runtime) {
    # This machine's platform in the portable form the .NET packs are published for (linux-x64, win-arm64, ...).
    $os = if ($IsWindows) { 'win' } elseif ($IsMacOS) { 'osx' } else { 'linux' }
    $Runtime = "$os-$([Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString().ToLowerInvariant())"
}

function Invoke-Native {
    param([string] $File, [string[]] $Arguments)
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "'$File $($Arguments -join ' ')' failed with exit code $LASTEXITCODE." }
}

function Invoke-Build {
    if (-not (Get-Command dotnet -ErrorAction SilentlyContinue)) { throw 'The .NET SDK (dotnet) is required.' }
    $publish = Join-Path $repo 'obj/publish'
    $readyToRun = Join-Path $repo 'obj/publish-r2r'
    foreach ($folder in $publish, $readyToRun) { if (Test-Path $folder) { Remove-Item $folder -Recurse -Force } }
    # The portable publish decides what ships; the ReadyToRun publish of the same closure replaces its assemblies.
    Invoke-Native dotnet @('publish', "$repo/src/FileShare.PowerShell/FileShare.PowerShell.csproj", '-c', $Configuration, '-o', $publish, '--nologo', '-v', 'quiet')
    if ($Runtime -ne 'portable') {
        Invoke-Native dotnet @('publish', "$repo/tools/ReadyToRun/ReadyToRun.csproj", '-c', $Configuration, '-r', $Runtime, '-o', $readyToRun, '--nologo', '-v', 'quiet')
    }

    if (Test-Path $moduleDir) { Remove-Item $moduleDir -Recurse -Force }
    $bin = New-Item -ItemType Directory -Path (Join-Path $moduleDir 'bin') -Force
    foreach ($file in Get-ChildItem $publish -File -Include '*.dll', '*.pdb' -Recurse) {
        $relative = [IO.Path]::GetRelativePath($publish, $file.FullName)
        $target = Join-Path $bin $relative
        $null = New-Item -ItemType Directory -Path (Split-Path $target) -Force
        $source = if ($Runtime -eq 'portable' -or $file.Extension -ne '.dll') { $file.FullName } else { Join-Path $readyToRun $relative }
        Copy-Item $source $target
    }
    Copy-Item "$repo/module/FileShare.format.ps1xml" $moduleDir
    (Get-Content "$repo/module/FileShare.psd1" -Raw).Replace('{{ModuleVersion}}', $version) |
        Set-Content (Join-Path $moduleDir 'FileShare.psd1') -NoNewline
    & "$repo/tools/New-MamlHelp.ps1" -SourcePath "$repo/docs/help" -OutputPath $moduleDir
    Write-Host "Built FileShare $version ($(if ($Runtime -eq 'portable') { 'portable IL' } else { "ReadyToRun for $Runtime" })) into $moduleDir"
    Write-Host "To use it: `$env:PSModulePath = '$outRoot' + [IO.Path]::PathSeparator + `$env:PSModulePath; Import-Module FileShare"
}

# A child pwsh like this one: the dotnet tool runs as `dotnet pwsh.dll`, an installed pwsh as itself.
function Get-PwshCommand {
    $process = [Environment]::ProcessPath
    if ((Split-Path $process -Leaf) -match '^dotnet(\.exe)?$') { @($process, (Join-Path $PSHOME 'pwsh.dll')) } else { @($process) }
}

# Counts, and each failed test's name with the first line of its message: CI logs keep only their tail.
function Get-TrxCounts([string] $Path) {
    $run = ([xml](Get-Content $Path -Raw)).TestRun
    $counters = $run.ResultSummary.Counters
    $failures = @($run.Results.UnitTestResult | Where-Object outcome -ne 'Passed' | Where-Object outcome -ne 'NotExecuted' |
        ForEach-Object {
            $message = $_.SelectSingleNode("*[local-name()='Output']/*[local-name()='ErrorInfo']/*[local-name()='Message']")
            "$($_.testName): $("$($message.InnerText)".Trim() -split '\r?\n' | Select-Object -First 1)"
        })
    [pscustomobject]@{ Passed = [int]$counters.passed; Failed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout; Skipped = [int]$counters.notExecuted; Failures = $failures }
}

# The Pester scenarios run real peers: the original program's protocol (python3), SSH remoting to a private sshd,
# and a full disk in a namespace of their own (unshare). On a fresh Debian or Ubuntu machine, as root, the missing
# ones are installed; elsewhere the tests that need them fail and say what to install.
function Install-TestTools {
    if (-not $IsLinux) { return }
    $wanted = [ordered]@{ python3 = 'python3'; sshd = 'openssh-server'; ssh = 'openssh-client'; 'ssh-keygen' = 'openssh-client'; unshare = 'util-linux' }
    $missing = @($wanted.Keys | Where-Object { -not (Get-Command $_ -CommandType Application -ErrorAction Ignore) -and -not (Test-Path "/usr/sbin/$_") } |
        ForEach-Object { $wanted[$_] } | Select-Object -Unique)
    if ($missing.Count -eq 0) { return }
    if ((id -u) -ne '0' -or -not (Get-Command apt-get -ErrorAction Ignore)) {
        Write-Warning "Tests that need $($missing -join ', ') will fail: install them (apt-get install $($missing -join ' '))."
        return
    }
    Write-Host "Installing $($missing -join ', ') with apt-get for the Pester scenarios"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & apt-get update -qq | Out-Null
    & apt-get install -y -qq @missing | Out-Null
}

function Invoke-Test {
    Invoke-Build
    $results = Join-Path $outRoot 'test-results'
    if (Test-Path $results) { Remove-Item $results -Recurse -Force }
    $totals = [ordered]@{ Passed = 0; Failed = 0; Skipped = 0 }
    $failures = [Collections.Generic.List[string]]::new()

    foreach ($project in 'FileShare.Core.Tests', 'FileShare.PowerShell.Tests') {
        Write-Host "== xunit: $project"
        & dotnet test "$repo/tests/$project/$project.csproj" -c $Configuration --nologo `
            --logger "trx;LogFileName=$project.trx" --logger 'console;verbosity=minimal' --results-directory $results
        $trx = Join-Path $results "$project.trx"
        if (-not (Test-Path $trx)) { throw "$project produced no results (build failure?)." }
        $counts = Get-TrxCounts $trx
        foreach ($key in 'Passed', 'Failed', 'Skipped') { $totals[$key] += $counts.$key }
        $failures.AddRange([string[]]$counts.Failures)
    }

    Write-Host '== Pester'
    Install-TestTools
    Invoke-Native dotnet @('restore', "$repo/tests/Pester/Pester.Restore.csproj", '--nologo', '-v', 'quiet')
    $pesterSummary = Join-Path $results 'pester.json'
    $pwsh = Get-PwshCommand
    & $pwsh[0] @($pwsh | Select-Object -Skip 1) -NoProfile -NonInteractive -File "$repo/tests/Pester/Invoke-Tests.ps1" -ModulePath $moduleDir -SummaryPath $pesterSummary
    if (-not (Test-Path $pesterSummary)) { throw 'Pester produced no summary.' }
    $pester = Get-Content $pesterSummary -Raw | ConvertFrom-Json
    foreach ($key in 'Passed', 'Failed', 'Skipped') { $totals[$key] += $pester.$key }
    $failures.AddRange([string[]]@($pester.Failures))

    if ($failures.Count -gt 0) {
        Write-Host 'Failed:'
        $failures | ForEach-Object { Write-Host "  - $_" }
    }
    Write-Host "Tests: $($totals.Passed) passed, $($totals.Failed) failed, $($totals.Skipped) skipped"
    if ($totals.Failed -gt 0) { exit 1 }
}

switch ($Task) {
    'Build' { Invoke-Build }
    'Test' { Invoke-Test }
    'Demo' {
        Invoke-Build
        $pwsh = Get-PwshCommand
        & $pwsh[0] @($pwsh | Select-Object -Skip 1) -NoProfile -File "$repo/tools/Demo.ps1" -ModulePath $moduleDir -WorkPath (Join-Path $outRoot 'demo') -LargeFileBytes $DemoLargeFileBytes
        exit $LASTEXITCODE
    }
    'Package' {
        Invoke-Build
        & "$repo/tools/New-ModulePackage.ps1" -ModulePath $moduleDir -OutputPath (Join-Path $outRoot 'packages')
    }
    'Bench' {
        Invoke-Build
        $python = @('/usr/bin/python3', 'python3') | Where-Object { Get-Command $_ -ErrorAction SilentlyContinue } | Select-Object -First 1
        if (-not $python) { throw 'The benchmark needs python3.' }
        $pwsh = Get-PwshCommand
        $arguments = @("$repo/bench/run.py", '--repo', $repo, '--module', $moduleDir, '--runs', $Runs,
            '--command-line', "./build.ps1 Bench$(if ($Quick) { ' -Quick' })$(if ($Runs -gt 1) { " -Runs $Runs" })")
        if ($Quick) { $arguments += '--quick', '--no-docs' }
        & $python @arguments '--pwsh' @pwsh
        exit $LASTEXITCODE
    }
    'Clean' {
        foreach ($path in $outRoot, "$repo/obj/publish", "$repo/obj/publish-r2r") { if (Test-Path $path) { Remove-Item $path -Recurse -Force } }
        Invoke-Native dotnet @('clean', "$repo/FileShare.sln", '-c', $Configuration, '--nologo', '-v', 'quiet')
    }
}

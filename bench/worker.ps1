<#
.SYNOPSIS
    A warm pwsh for the benchmark harness: runs one script per command and answers with its wall time.
.DESCRIPTION
    Reads one JSON command per line from CommandPipe ({"script": "..."}), runs the script in this session (so
    modules, variables and server jobs persist between commands) and writes one JSON answer per line to AnswerPipe:
    {"seconds": wall time of the script alone, "output": its output as strings, "error": message or null}.
    The pipes are named fifos, so stdout and stderr stay free for a terminal (progress on) or /dev/null.
#>
param(
    [Parameter(Mandatory)] [string] $CommandPipe,
    [Parameter(Mandatory)] [string] $AnswerPipe,
    [Parameter(Mandatory)] [string] $ModulePath,
    [switch] $ShowProgress,
    [switch] $LoadHttpClientPeer
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$ProgressPreference = if ($ShowProgress) { 'Continue' } else { 'SilentlyContinue' }
if ($LoadHttpClientPeer) { Add-Type -Path (Join-Path $PSScriptRoot 'BenchHttp.cs') }

$answers = [IO.StreamWriter]::new($AnswerPipe)
$answers.AutoFlush = $true
$answers.WriteLine('{"ready": true}')
foreach ($line in [IO.File]::ReadLines($CommandPipe)) {
    $command = $line | ConvertFrom-Json
    $answer = [ordered]@{ seconds = $null; output = @(); error = $null }
    $clock = [Diagnostics.Stopwatch]::StartNew()
    try {
        $output = @(& ([scriptblock]::Create($command.script)))
        $answer.seconds = $clock.Elapsed.TotalSeconds
        $answer.output = @($output | ForEach-Object { "$_" })
    }
    catch {
        $answer.seconds = $clock.Elapsed.TotalSeconds
        $answer.error = "$($_.FullyQualifiedErrorId): $($_.Exception.Message)"
    }
    $answers.WriteLine(($answer | ConvertTo-Json -Compress -Depth 3))
    if ($command.PSObject.Properties['exit'] -and $command.exit) { break }
}
Get-Job | Remove-Job -Force

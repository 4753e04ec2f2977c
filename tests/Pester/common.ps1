# Helpers shared by the FileShare Pester tests; dot-source it from a file-level BeforeAll:
#     BeforeAll { . $PSScriptRoot/common.ps1 }
# It imports the built module from $env:FILESHARE_MODULE_PATH (set by Invoke-Tests.ps1) and offers: child pwsh
# processes, a server host process that reports its ports, Wait-Until (polling, never a fixed sleep), free ports,
# SHA-256 of many files at once, test files (random, repeated, sparse) and cleanup of every child started here.

Set-StrictMode -Version Latest

if (-not $env:FILESHARE_MODULE_PATH) {
    throw 'FILESHARE_MODULE_PATH is not set; run the tests through tests/Pester/Invoke-Tests.ps1 -ModulePath out/FileShare/<version>.'
}

$global:FileShareManifest = Join-Path ([IO.Path]::GetFullPath($env:FILESHARE_MODULE_PATH)) 'FileShare.psd1'
Import-Module $global:FileShareManifest -Force -ErrorAction Stop

if (-not (Test-Path variable:global:FileShareTestProcesses)) {
    $global:FileShareTestProcesses = [Collections.Generic.List[Diagnostics.Process]]::new()
}

# Child scripts and the files children report through; Invoke-Tests.ps1 removes the folder after the run.
$global:FileShareTestTemp = Join-Path ([IO.Path]::GetTempPath()) "fileshare-pester-$PID"
$null = New-Item -ItemType Directory -Path $global:FileShareTestTemp -Force

$global:FileSharePeers = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../peers'))
$global:FileSharePtyRun = Join-Path $PSScriptRoot 'pty_run.py'

function Wait-Until {
    <# Polls Condition every IntervalMs until it returns a truthy value, which is returned; throws after TimeoutSec. #>
    param(
        [Parameter(Mandatory, Position = 0)] [scriptblock] $Condition,
        [double] $TimeoutSec = 10,
        [int] $IntervalMs = 25,
        [string] $Because = $Condition.ToString().Trim()
    )

    $clock = [Diagnostics.Stopwatch]::StartNew()
    while ($true) {
        $value = & $Condition
        if ($value) { return $value }
        if ($clock.Elapsed.TotalSeconds -ge $TimeoutSec) {
            throw "Timed out after $TimeoutSec s waiting for: $Because"
        }
        Start-Sleep -Milliseconds $IntervalMs
    }
}

function New-DualModeSocket {
    # Bound like the server binds (any address, IPv4 and IPv6), so "free" here means free for a server.
    $socket = [Net.Sockets.Socket]::new([Net.Sockets.AddressFamily]::InterNetworkV6, [Net.Sockets.SocketType]::Stream, [Net.Sockets.ProtocolType]::Tcp)
    $socket.DualMode = $true
    $socket
}

function Get-FreePort {
    <# Ports nobody listens on right now, all different: the OS picks them (bind to port 0). #>
    param([int] $Count = 1)
    $held = foreach ($i in 1..$Count) {
        $socket = New-DualModeSocket
        $socket.Bind([Net.IPEndPoint]::new([Net.IPAddress]::IPv6Any, 0))
        $socket
    }
    try { foreach ($socket in $held) { $socket.LocalEndPoint.Port } }
    finally { foreach ($socket in $held) { $socket.Dispose() } }
}

function Test-PortFree {
    <# True when a TCP listener can bind the port (on every address) right now. #>
    param([Parameter(Mandatory)] [int] $Port)
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::IPv6Any, $Port)
    $listener.Server.DualMode = $true
    try { $listener.Start(); $true }
    catch [Net.Sockets.SocketException] { $false }
    finally { $listener.Stop() }
}

function Wait-ServerListening {
    <# Polls until a FileShare server answers a listing on Port (connecting, never binding, so it cannot steal the port). #>
    param([Parameter(Mandatory)] [int] $Port, [string] $ComputerName = 'localhost', [double] $TimeoutSec = 30)
    $null = Wait-Until -TimeoutSec $TimeoutSec -Because "a FileShare server to answer on $ComputerName`:$Port" {
        $failures = $null
        $null = Get-RemoteFileList -ComputerName $ComputerName -Port $Port -TimeoutSec 5 -ErrorAction SilentlyContinue -ErrorVariable failures
        -not $failures
    }
}

function Get-Sha256 {
    <# SHA-256 (upper-case hex) of each file, hashed concurrently; returns the hashes in the order given. #>
    param([Parameter(Mandatory, ValueFromPipeline)] [string[]] $Path)
    begin { $all = [Collections.Generic.List[string]]::new() }
    process { $all.AddRange($Path) }
    end {
        $streams = foreach ($file in $all) {
            [IO.FileStream]::new($file, 'Open', 'Read', 'Read', 1MB, [IO.FileOptions]::Asynchronous -bor [IO.FileOptions]::SequentialScan)
        }
        try {
            $tasks = [Threading.Tasks.Task[]]@(foreach ($stream in $streams) { [Security.Cryptography.SHA256]::HashDataAsync($stream).AsTask() })
            [Threading.Tasks.Task]::WaitAll($tasks)
            foreach ($task in $tasks) { [Convert]::ToHexString($task.Result) }
        }
        finally { foreach ($stream in $streams) { $stream.Dispose() } }
    }
}

function Get-BytesSha256([byte[]] $Bytes) { [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($Bytes)) }

function New-RandomBytes([int] $Length, [int] $Seed = 1) {
    $bytes = [byte[]]::new($Length)
    [Random]::new($Seed).NextBytes($bytes)
    , $bytes
}

function New-TestFile {
    <# Writes Length random bytes (or the given Bytes) to Path, creating folders; returns the SHA-256. #>
    param([Parameter(Mandatory)] [string] $Path, [long] $Length, [byte[]] $Bytes, [int] $Seed = 1)
    if (-not $PSBoundParameters.ContainsKey('Bytes')) { $Bytes = New-RandomBytes $Length $Seed }
    $null = New-Item -ItemType Directory -Path (Split-Path $Path) -Force
    [IO.File]::WriteAllBytes($Path, $Bytes)
    Get-BytesSha256 $Bytes
}

function New-RepeatedFile {
    <# A big file made cheaply: one random 1 MiB block written Count times; returns the SHA-256 without re-reading. #>
    param([Parameter(Mandatory)] [string] $Path, [Parameter(Mandatory)] [int] $Count, [int] $Seed = 7)
    $block = New-RandomBytes 1MB $Seed
    $hash = [Security.Cryptography.IncrementalHash]::CreateHash('SHA256')
    $null = New-Item -ItemType Directory -Path (Split-Path $Path) -Force
    $stream = [IO.File]::Create($Path)
    try {
        for ($i = 0; $i -lt $Count; $i++) { $stream.Write($block, 0, $block.Length); $hash.AppendData($block) }
    }
    finally { $stream.Dispose() }
    [Convert]::ToHexString($hash.GetHashAndReset())
}

function New-SparseFile {
    <# A file of Length bytes that takes no disk space but for the random bytes written at each offset in DataAt. #>
    param([Parameter(Mandatory)] [string] $Path, [Parameter(Mandatory)] [long] $Length, [long[]] $DataAt = @(), [int] $DataLength = 8192, [int] $Seed = 0)
    $null = New-Item -ItemType Directory -Path (Split-Path $Path) -Force
    $stream = [IO.FileStream]::new($Path, 'Create', 'Write')
    try {
        $stream.SetLength($Length)
        foreach ($offset in $DataAt) {
            $stream.Position = $offset
            $data = New-RandomBytes $DataLength ([int](($offset + $Seed) % [int]::MaxValue))
            $stream.Write($data, 0, $data.Length)
        }
    }
    finally { $stream.Dispose() }
}

function Get-PwshCommandLine {
    <# How to start another pwsh like this one: 'dotnet <PSHOME>/pwsh.dll' when pwsh runs as a dotnet tool, else the pwsh executable. #>
    $process = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($process) -eq 'dotnet') { , @($process, (Join-Path $PSHOME 'pwsh.dll')) }
    else { , @($process) }
}

function New-ChildScript {
    <#
    Writes ScriptBlock to a .ps1 that imports the module and then runs the block with ArgumentList (passed as
    CliXml, so arrays and numbers keep their types). Returns the script's path.
    #>
    param([Parameter(Mandatory)] [scriptblock] $ScriptBlock, [object[]] $ArgumentList = @(), [string] $Directory = $global:FileShareTestTemp)
    $arguments = [Management.Automation.PSSerializer]::Serialize([object[]]$ArgumentList, 5).Replace("'", "''")
    $path = Join-Path $Directory ("child-{0}.ps1" -f [guid]::NewGuid().ToString('n'))
    @"
`$PSStyle.OutputRendering = 'PlainText'
Import-Module '$($global:FileShareManifest.Replace("'", "''"))' -ErrorAction Stop
`$__arguments = [System.Management.Automation.PSSerializer]::Deserialize('$arguments')
& {
$ScriptBlock
} @__arguments
"@ | Set-Content -LiteralPath $path -Encoding utf8
    $path
}

function Start-TestProcess {
    <#
    Starts FilePath with ArgumentList (passed verbatim, no quoting issues), no window, stdin/stdout/stderr
    redirected; stdout and stderr are collected in the background so the child never blocks on a full pipe.
    The process is tracked and killed by Stop-TestProcesses.
    #>
    param(
        [Parameter(Mandatory)] [string] $FilePath,
        [string[]] $ArgumentList = @(),
        [string] $WorkingDirectory = (Get-Location).ProviderPath,
        # Leave stdout to the caller (Process.StandardOutput) instead of collecting it; StdOut is then $null.
        [switch] $KeepStdOut,
        # Environment variables to set (or, with a $null value, remove) in the child only.
        [hashtable] $Environment = @{}
    )
    $info = [Diagnostics.ProcessStartInfo]::new($FilePath)
    foreach ($argument in $ArgumentList) { $info.ArgumentList.Add($argument) }
    foreach ($name in $Environment.Keys) {
        if ($null -eq $Environment[$name]) { $null = $info.Environment.Remove($name) } else { $info.Environment[$name] = [string]$Environment[$name] }
    }
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.RedirectStandardInput = $true
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $info.StandardOutputEncoding = [Text.UTF8Encoding]::new($false)
    $info.StandardErrorEncoding = [Text.UTF8Encoding]::new($false)
    $info.WorkingDirectory = $WorkingDirectory
    $process = [Diagnostics.Process]::Start($info)
    $global:FileShareTestProcesses.Add($process)
    $process.StandardInput.AutoFlush = $true
    [pscustomobject]@{
        Process = $process
        Id      = $process.Id
        StdOut  = if ($KeepStdOut) { $null } else { $process.StandardOutput.ReadToEndAsync() }
        StdErr  = $process.StandardError.ReadToEndAsync()
    }
}

function Start-ChildPwsh {
    <# Runs ScriptBlock in a new 'pwsh -NoProfile -NonInteractive -File' process with the module imported. #>
    param([Parameter(Mandatory)] [scriptblock] $ScriptBlock, [object[]] $ArgumentList = @(), [string] $WorkingDirectory = (Get-Location).ProviderPath, [hashtable] $Environment = @{})
    $script = New-ChildScript -ScriptBlock $ScriptBlock -ArgumentList $ArgumentList
    $pwsh = Get-PwshCommandLine
    Start-TestProcess -FilePath $pwsh[0] -ArgumentList (@($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $script)) -WorkingDirectory $WorkingDirectory -Environment $Environment
}

function Wait-TestProcess {
    <# Waits for a child from Start-TestProcess to exit; returns ExitCode, StdOut, StdErr. Kills it and throws after TimeoutSec. #>
    param([Parameter(Mandatory, ValueFromPipeline)] $Child, [double] $TimeoutSec = 30)
    process {
        if (-not $Child.Process.WaitForExit([int]($TimeoutSec * 1000))) {
            $Child.Process.Kill($true)
            throw "Process $($Child.Id) did not exit within $TimeoutSec s. stderr: $(Get-TaskText $Child.StdErr)"
        }
        $Child.Process.WaitForExit()
        [pscustomobject]@{
            ExitCode = $Child.Process.ExitCode
            StdOut   = Get-TaskText $Child.StdOut
            StdErr   = Get-TaskText $Child.StdErr
        }
    }
}

function Get-TaskText($Task) { if ($null -eq $Task) { '' } elseif ($Task.Wait(5000)) { $Task.Result } else { '<still open>' } }

function Send-Signal {
    <# kill(1) with a signal name: STOP, CONT, KILL, INT... #>
    param([Parameter(Mandatory)] [int] $ProcessId, [Parameter(Mandatory)] [string] $Signal)
    $kill = Get-Command kill -CommandType Application | Select-Object -First 1
    & $kill.Source "-$Signal" $ProcessId
    if ($LASTEXITCODE -ne 0) { throw "kill -$Signal $ProcessId failed." }
}

function Start-ServerHost {
    <#
    Starts a pwsh process that runs Start-FileShareServer for each Path (port 0 = any free port unless Port is given)
    and returns once it has reported the real ports: an object with Process, Id, Ports (in Path order), Child.
    The host then obeys lines on its stdin: 'log <file>' writes every request record of its servers as JSON to <file>,
    'exit' stops the servers and exits; end of input (the test run went away) exits too.
    With -Separate, each Path gets a host process of its own, all started at once, and one object per host is returned.
    #>
    param([Parameter(Mandatory)] [string[]] $Path, [int[]] $Port = @(0) * $Path.Count, [double] $TimeoutSec = 30, [hashtable] $Environment = @{}, [switch] $Separate)
    $starting = if ($Separate) { for ($i = 0; $i -lt $Path.Count; $i++) { Start-ServerHostProcess -Path $Path[$i] -Port $Port[$i] -Environment $Environment } }
    else { Start-ServerHostProcess -Path $Path -Port $Port -Environment $Environment }
    foreach ($pending in $starting) { Wait-ServerHostReady $pending -TimeoutSec $TimeoutSec }
}

function Start-ServerHostProcess {
    param([Parameter(Mandatory)] [string[]] $Path, [Parameter(Mandatory)] [int[]] $Port, [hashtable] $Environment = @{})
    $ready = Join-Path $global:FileShareTestTemp ("host-{0}.json" -f [guid]::NewGuid().ToString('n'))
    $arguments = @(, $Path) + @(, $Port) + @($ready)
    $child = Start-ChildPwsh -ArgumentList $arguments -Environment $Environment -ScriptBlock {
        param([string[]] $Path, [int[]] $Port, [string] $Ready)
        $ErrorActionPreference = 'Stop'
        $jobs = @(Start-FileShareServer -Port $Port -Path $Path)
        $state = @{ Ports = @($jobs.Port); ProcessId = $PID } | ConvertTo-Json -Compress
        Set-Content -LiteralPath "$Ready.tmp" -Value $state
        Move-Item -LiteralPath "$Ready.tmp" -Destination $Ready
        while ($null -ne ($line = [Console]::In.ReadLine())) {
            if ($line -eq 'exit') { break }
            if ($line -like 'log *') {
                $file = $line.Substring(4)
                $records = @(foreach ($job in $jobs) {
                    Receive-Job $job -Keep | Select-Object Port, RemoteEndPoint, @{ n = 'Request'; e = { "$($_.Request)" } }, Path, Bytes, Outcome,
                        @{ n = 'EndTicks'; e = { $_.Time.ToUniversalTime().Ticks } }, @{ n = 'DurationTicks'; e = { $_.Duration.Ticks } }
                })
                $stats = @(foreach ($job in $jobs) { $job | Select-Object Port, TotalConnections, Requests, BytesSent })
                @{ Records = $records; Servers = $stats } | ConvertTo-Json -Depth 4 -Compress | Set-Content -LiteralPath "$file.tmp"
                Move-Item -LiteralPath "$file.tmp" -Destination $file
            }
        }
        Stop-FileShareServer -All
    }
    [pscustomobject]@{ Child = $child; Ready = $ready }
}

function Wait-ServerHostReady {
    param([Parameter(Mandatory)] $Starting, [double] $TimeoutSec = 30)
    $child, $ready = $Starting.Child, $Starting.Ready
    try {
        $null = Wait-Until -TimeoutSec $TimeoutSec -Because "server host $($child.Id) to report its ports" {
            if ($child.Process.HasExited) { throw "The server host exited early ($($child.Process.ExitCode)): $(Get-TaskText $child.StdErr)" }
            Test-Path -LiteralPath $ready
        }
    }
    catch { if (-not $child.Process.HasExited) { $child.Process.Kill($true) }; throw }
    $state = Get-Content -LiteralPath $ready -Raw | ConvertFrom-Json
    Remove-Item -LiteralPath $ready
    [pscustomobject]@{ Child = $child; Process = $child.Process; Id = $child.Id; Ports = [int[]]$state.Ports }
}

function Get-ServerHostLog {
    <# The request records (Port, Request, Path, Bytes, Outcome, EndTicks, DurationTicks) and per-server figures of a server host. #>
    param([Parameter(Mandatory)] $ServerHost, [double] $TimeoutSec = 15)
    $file = Join-Path $global:FileShareTestTemp ("log-{0}.json" -f [guid]::NewGuid().ToString('n'))
    $ServerHost.Process.StandardInput.WriteLine("log $file")
    $null = Wait-Until -TimeoutSec $TimeoutSec -Because 'the server host to write its log' { Test-Path -LiteralPath $file }
    $log = Get-Content -LiteralPath $file -Raw | ConvertFrom-Json
    Remove-Item -LiteralPath $file
    $log
}

function Stop-ServerHost {
    <# Asks a server host to stop its servers and exit; kills it if it does not within TimeoutSec. #>
    param([Parameter(Mandatory)] $ServerHost, [double] $TimeoutSec = 15)
    if ($ServerHost.Process.HasExited) { return }
    try { $ServerHost.Process.StandardInput.WriteLine('exit') } catch [IO.IOException] { }
    if (-not $ServerHost.Process.WaitForExit([int]($TimeoutSec * 1000))) { $ServerHost.Process.Kill($true) }
}

function Get-DownloadSpans {
    <#
    One span per download: a verified download is a Hash request then a Read on the same connection, so its span runs
    from the digest request's arrival to the last byte of the read. Takes request records (Request, Path,
    RemoteEndPoint, EndTicks, DurationTicks) and returns spans with EndTicks and DurationTicks.
    #>
    param([object[]] $Records)
    foreach ($group in ($Records | Where-Object { "$($_.Request)" -in 'Hash', 'Read' } | Group-Object RemoteEndPoint, Path)) {
        # Plain loops: Measure-Object works in doubles, which cannot hold tick counts exactly.
        [long]$start = [long]::MaxValue; [long]$end = [long]::MinValue
        foreach ($record in $group.Group) {
            $start = [Math]::Min($start, [long]$record.EndTicks - [long]$record.DurationTicks)
            $end = [Math]::Max($end, [long]$record.EndTicks)
        }
        [pscustomobject]@{ EndTicks = $end; DurationTicks = $end - $start }
    }
}

function Get-MaxOverlap {
    <# Most intervals open at one instant, from records with EndTicks and DurationTicks. #>
    param([object[]] $Records)
    $events = foreach ($record in $Records) {
        [pscustomobject]@{ At = [long]$record.EndTicks - [long]$record.DurationTicks; Delta = 1 }
        [pscustomobject]@{ At = [long]$record.EndTicks; Delta = -1 }
    }
    $open = 0; $max = 0
    # Ends sort before starts at the same tick, so back-to-back requests do not count as overlapping.
    foreach ($event in ($events | Sort-Object At, Delta)) {
        $open += $event.Delta
        if ($open -gt $max) { $max = $open }
    }
    $max
}

function Invoke-InRunspace {
    <#
    Starts ScriptBlock (with the module imported) in a new runspace of this process and returns at once with
    PowerShell and Handle; use Wait-InRunspace for the results.
    #>
    param([Parameter(Mandatory)] [scriptblock] $ScriptBlock, [object[]] $ArgumentList = @())
    $ps = [PowerShell]::Create()
    $null = $ps.AddCommand('Import-Module').AddParameter('Name', $global:FileShareManifest).AddStatement()
    $null = $ps.AddScript($ScriptBlock.ToString())
    foreach ($argument in $ArgumentList) { $null = $ps.AddArgument($argument) }
    [pscustomobject]@{ PowerShell = $ps; Handle = $ps.BeginInvoke(); Clock = [Diagnostics.Stopwatch]::StartNew() }
}

function Wait-InRunspace {
    <# Waits for Invoke-InRunspace work; returns Output, Errors and Seconds (from start to end). #>
    param([Parameter(Mandatory)] $Work, [double] $TimeoutSec = 30)
    try {
        if (-not $Work.Handle.AsyncWaitHandle.WaitOne([int]($TimeoutSec * 1000))) {
            throw "The background pipeline did not finish within $TimeoutSec s."
        }
        $seconds = $Work.Clock.Elapsed.TotalSeconds
        $output = $Work.PowerShell.EndInvoke($Work.Handle)
        [pscustomobject]@{ Output = @($output); Errors = @($Work.PowerShell.Streams.Error); Seconds = $seconds }
    }
    finally {
        if ($Work.PowerShell.InvocationStateInfo.State -eq 'Running') { $Work.PowerShell.Stop() }
        $Work.PowerShell.Dispose()
    }
}

function Start-PtyCtrlC {
    <#
    Starts a pwsh script in a pseudo-terminal (tests/Pester/pty_run.py), which presses Ctrl+C there once Marker is
    printed or File exists. Returns at once; Receive-PtyVerdict waits for the outcome.
    #>
    param([Parameter(Mandatory)] [string] $Script, [string] $Marker, [string] $File, [double] $TriggerTimeoutSec = 30, [double] $ExitTimeoutSec = 15)
    $arguments = @($global:FileSharePtyRun, '--trigger-timeout', $TriggerTimeoutSec, '--exit-timeout', $ExitTimeoutSec)
    if ($Marker) { $arguments += '--marker', $Marker }
    if ($File) { $arguments += '--file', $File }
    $arguments += @('--') + (Get-PwshCommandLine) + @('-NoProfile', '-File', $Script)
    $child = Start-TestProcess -FilePath python3 -ArgumentList $arguments
    $child | Add-Member -NotePropertyName TimeoutSec -NotePropertyValue ($TriggerTimeoutSec + $ExitTimeoutSec + 15) -PassThru
}

function Receive-PtyVerdict {
    <# pty_run's verdict: triggered, interrupted, exited, exit_code, seconds_to_exit, output. #>
    param([Parameter(Mandatory, ValueFromPipeline)] $PtyRun)
    process {
        $result = Wait-TestProcess $PtyRun -TimeoutSec $PtyRun.TimeoutSec
        if ($result.ExitCode -ne 0) { throw "pty_run.py failed ($($result.ExitCode)): $($result.StdErr)" }
        $result.StdOut | ConvertFrom-Json
    }
}

function Remove-TestJobs {
    <# Stops and removes every job of this session (the servers free their ports). #>
    Get-Job | Remove-Job -Force
}

function Stop-TestProcesses {
    <# Kills every child process the helpers started that is still running (whole process trees), resuming stopped ones first. #>
    foreach ($process in @($global:FileShareTestProcesses)) {
        try {
            if (-not $process.HasExited) {
                $process.Kill($true)
                $null = $process.WaitForExit(10000)
            }
        }
        catch [InvalidOperationException] { }
        $process.Dispose()
    }
    $global:FileShareTestProcesses.Clear()
}

BeforeAll {
    . $PSScriptRoot/common.ps1

    # One share for most tests: small files, random ones, and a sparse big one that takes seconds to download, so a
    # test can act while a transfer is under way (the .partial file exists) long before it could end. big.bin has
    # distinct random bytes in every 4 MiB piece, so a piece missing or written in the wrong place changes its hash.
    $share = Join-Path $TestDrive 'share'
    $hashes = @{
        'hello.txt'           = New-TestFile (Join-Path $share 'hello.txt') -Length 12
        'empty.bin'           = New-TestFile (Join-Path $share 'empty.bin') -Length 0
        'sub/with space ü.md' = New-TestFile (Join-Path $share 'sub/with space ü.md') -Length 70000
    }
    New-SparseFile (Join-Path $share 'big.bin') -Length 2GB -DataAt (@(0, (1GB - 100)) + @(1..511 | ForEach-Object { $_ * 4MB + 12345 }))
    # Random throughout: every byte of a copy is checked by its hash.
    $hashes['quarter.bin'] = New-TestFile (Join-Path $share 'quarter.bin') -Length 256MB -Seed 4

    function Get-PartialFiles([string] $Folder) {
        if (Test-Path -LiteralPath $Folder) { Get-ChildItem -LiteralPath $Folder -Recurse -Force -File -Filter '.*.partial' }
    }
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Get-RemoteFile' {
    BeforeEach {
        $destination = Join-Path $TestDrive ('dl-' + [guid]::NewGuid().ToString('n'))
    }

    AfterEach {
        # Child processes are ended by the tests that start them (and by AfterAll): a Context's server host outlives a test.
        Remove-TestJobs
        if (Test-Path -LiteralPath $destination) { Remove-Item -LiteralPath $destination -Recurse -Force }
    }

    Context 'from a server in this session' {
        BeforeEach {
            $job = Start-FileShareServer -Port 0 -Path $share
        }

        It 'downloads files into -Destination, keeping sub-folders, and -PassThru returns them' {
            $names = 'hello.txt', 'empty.bin', 'sub/with space ü.md', 'quarter.bin'

            $files = Get-RemoteFile -Name $names -Port $job.Port -Destination $destination -ThrottleLimit 2 -PassThru

            $files.Count | Should -Be 4
            $files | Should -BeOfType System.IO.FileInfo
            $targets = $names | ForEach-Object { Join-Path $destination $_ }
            Get-Sha256 $targets | Should -Be @($names | ForEach-Object { $hashes[$_] })
            @(Get-PartialFiles $destination).Count | Should -Be 0
        }

        It 'downloads into ./localStorage by default' {
            Push-Location (New-Item -ItemType Directory -Path $destination)
            try { Get-RemoteFile hello.txt -Port $job.Port }
            finally { Pop-Location }

            Get-Sha256 (Join-Path $destination 'localStorage/hello.txt') | Should -Be $hashes['hello.txt']
        }

        It 'reports a missing file as RemoteFileNotFound (ObjectNotFound) and still downloads the rest' {
            Get-RemoteFile -Name hello.txt, missing.txt, empty.bin -Port $job.Port -Destination $destination -ErrorVariable getErrors -ErrorAction SilentlyContinue

            $getErrors.Count | Should -Be 1
            $getErrors[0].FullyQualifiedErrorId | Should -BeLike 'RemoteFileNotFound,*'
            $getErrors[0].CategoryInfo.Category | Should -Be ObjectNotFound
            $getErrors[0].Exception.Message | Should -Match 'missing\.txt'
            Test-Path (Join-Path $destination 'missing.txt') | Should -BeFalse
            Test-Path (Join-Path $destination 'hello.txt') | Should -BeTrue
            Test-Path (Join-Path $destination 'empty.bin') | Should -BeTrue
        }

        It 'keeps an existing file with -NoClobber (DestinationExists) and overwrites it otherwise' {
            $target = Join-Path $destination 'hello.txt'
            $null = New-Item -ItemType Directory -Path $destination
            Set-Content -LiteralPath $target -Value 'mine'

            $failure = { Get-RemoteFile hello.txt -Port $job.Port -Destination $destination -NoClobber -ErrorAction Stop } | Should -Throw -ErrorId 'DestinationExists,*' -PassThru
            $failure.CategoryInfo.Category | Should -Be ResourceExists
            (Get-Content -LiteralPath $target) | Should -Be 'mine'

            Get-RemoteFile hello.txt -Port $job.Port -Destination $destination
            Get-Sha256 $target | Should -Be $hashes['hello.txt']
        }

        It 'reports an unreachable server as ServerUnreachable naming host:port, and still downloads from the others' {
            $dead = Get-FreePort
            $wanted = @(
                [pscustomobject]@{ Name = 'lost.txt'; ComputerName = 'localhost'; Port = $dead }
                [pscustomobject]@{ Name = 'hello.txt'; ComputerName = 'localhost'; Port = $job.Port }
            )

            $wanted | Get-RemoteFile -Destination $destination -ErrorVariable getErrors -ErrorAction SilentlyContinue

            $getErrors.Count | Should -Be 1
            $getErrors[0].FullyQualifiedErrorId | Should -BeLike 'ServerUnreachable,*'
            $getErrors[0].CategoryInfo.Category | Should -Be ConnectionError
            $getErrors[0].Exception.Message | Should -Match ([regex]::Escape("localhost:$dead"))
            Test-Path (Join-Path $destination 'lost.txt') | Should -BeFalse
            Get-Sha256 (Join-Path $destination 'hello.txt') | Should -Be $hashes['hello.txt']
        }

        It 'refuses a name that would leave the destination folder, before asking the server' {
            $failure = { Get-RemoteFile '../escape.txt' -Port $job.Port -Destination $destination -ErrorAction Stop } | Should -Throw -PassThru
            $failure.FullyQualifiedErrorId | Should -BeLike 'InvalidRemotePath,*'
            $failure.CategoryInfo.Category | Should -Be InvalidData
            $job.Requests | Should -Be 0
            Test-Path (Join-Path $TestDrive 'escape.txt') | Should -BeFalse
        }

        It 'reports two servers offering different files under one name as DestinationConflict, keeping the first' {
            $otherShare = Join-Path $TestDrive 'other-hello'
            $null = New-TestFile (Join-Path $otherShare 'hello.txt') -Length 12 -Seed 99
            $other = Start-FileShareServer -Port 0 -Path $otherShare
            $wanted = @(
                [pscustomobject]@{ Name = 'hello.txt'; ComputerName = 'localhost'; Port = $job.Port }
                [pscustomobject]@{ Name = 'hello.txt'; ComputerName = 'localhost'; Port = $other.Port }
            )

            $wanted | Get-RemoteFile -Destination $destination -ErrorVariable getErrors -ErrorAction SilentlyContinue

            $getErrors.Count | Should -Be 1
            $getErrors[0].FullyQualifiedErrorId | Should -BeLike 'DestinationConflict,*'
            $getErrors[0].CategoryInfo.Category | Should -Be ResourceExists
            $getErrors[0].Exception.Message | Should -BeLike "*localhost:$($other.Port)*localhost:$($job.Port)*"
            Get-Sha256 (Join-Path $destination 'hello.txt') | Should -Be $hashes['hello.txt']
        }

        It 'downloads one file offered by two servers once, drawing pieces from both' {
            $other = Start-FileShareServer -Port 0 -Path $share

            $file = Get-RemoteFileList -Port $job.Port, $other.Port -Name quarter.bin | Get-RemoteFile -Destination $destination -PassThru -ErrorAction Stop

            @($file).Count | Should -Be 1
            $file.Sha256 | Should -Be $hashes['quarter.bin']
            Get-Sha256 $file.FullName | Should -Be $hashes['quarter.bin']
            @($file.Sources).Count | Should -Be 2
            # Sources lists every server asked, even one that sent nothing: each must have sent a share.
            foreach ($source in $file.Sources) { $source.Bytes | Should -BeGreaterThan 0 -Because "$($source.Endpoint) is one of the two sources: $($file.Sources | Out-String)" }
            ($file.Sources | Measure-Object Bytes -Sum).Sum | Should -Be 256MB
            $null = Wait-Until -Because 'each byte to come from one of the two servers, once' { $job.BytesSent + $other.BytesSent -eq 256MB }
        }

        It 'downloads a sparse file larger than 4 GiB with data across the 4 GiB boundary intact' {
            $hugeShare = Join-Path $TestDrive 'huge'
            $source = Join-Path $hugeShare 'huge.bin'
            New-SparseFile $source -Length (4GB + 64KB) -DataAt 0, (4GB - 4096), (4GB + 64KB - 8192)
            $hugeJob = Start-FileShareServer -Port 0 -Path $hugeShare
            try {
                $file = Get-RemoteFile huge.bin -Port $hugeJob.Port -Destination $destination -PassThru -ErrorAction Stop

                $file.Length | Should -Be (4GB + 64KB)
                $sourceHash, $downloadedHash = Get-Sha256 $source, $file.FullName
                $downloadedHash | Should -Be $sourceHash
            }
            finally {
                # The download is not sparse: give its 4 GiB back at once.
                Remove-Item -LiteralPath $destination -Recurse -Force -ErrorAction Ignore
            }
        }

        It 'with -ErrorAction Stop in a non-interactive pwsh -c, exits non-zero on a missing file and writes no progress to the output' {
            # big.bin (2 GB) takes seconds, many times the 250 ms between progress updates and the 0.5 s before a file's
            # own bar. The outcome checked is the user's: nothing but the script's own output reaches stdout and stderr.
            # (Get-RemoteFile writes no progress records when output is redirected, and the console host draws none
            # there either: forcing the records on still passes, so this pins the outcome, not which of the two holds.)
            $pwsh = Get-PwshCommandLine
            $command = @"
Import-Module '$FileShareManifest'
Get-RemoteFile -Name hello.txt, quarter.bin, big.bin -Port $($job.Port) -Destination '$destination' -ErrorAction Stop -ThrottleLimit 1
'downloaded'
Get-RemoteFile -Name missing.txt -Port $($job.Port) -Destination '$destination' -ErrorAction Stop
'not reached'
"@
            $child = Start-TestProcess -FilePath $pwsh[0] -ArgumentList (@($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-c', $command))

            $result = Wait-TestProcess $child -TimeoutSec 60

            $result.ExitCode | Should -Not -Be 0
            $result.StdOut.Trim() | Should -Be 'downloaded' -Because 'stdout carries only what the script writes: no progress bars or escape sequences'
            $result.StdErr | Should -Match 'missing\.txt'
            $result.StdErr | Should -Not -Match 'of \d+ files|/s\b' -Because 'progress is not reported when nobody watches'
            Get-Sha256 (Join-Path $destination 'quarter.bin') | Should -Be $hashes['quarter.bin']
            $sourceHash, $downloadedHash = Get-Sha256 (Join-Path $share 'big.bin'), (Join-Path $destination 'big.bin')
            $downloadedHash | Should -Be $sourceHash
            Test-Path (Join-Path $destination 'missing.txt') | Should -BeFalse
        }
    }

    Context 'into a destination that fills up' {
        It 'reports a full disk as DestinationWriteFailed, puts no short file in place, and the next file on the connection still arrives' {
            $fullShare = Join-Path $TestDrive 'fills-up'
            $expected = @{
                'a.txt'   = New-TestFile (Join-Path $fullShare 'a.txt') -Length 10000
                'mid.bin' = New-TestFile (Join-Path $fullShare 'mid.bin') -Length 800000
                'c.txt'   = New-TestFile (Join-Path $fullShare 'c.txt') -Length 10000
            }
            $server = Start-FileShareServer -Port 0 -Path $fullShare -BindAddress 127.0.0.1
            $tiny = New-Item -ItemType Directory -Path (Join-Path $TestDrive ('tiny-' + [guid]::NewGuid().ToString('n')))
            $script = New-ChildScript -ArgumentList $server.Port, $tiny.FullName -ScriptBlock {
                param($Port, $Tiny)
                # 1 MiB of tmpfs, half of it taken: room for the small files, not for mid.bin (800,000 bytes, written as it arrives).
                [IO.File]::WriteAllBytes((Join-Path $Tiny 'filler'), [byte[]]::new(512KB))
                $into = Join-Path $Tiny 'dl'
                Get-RemoteFile a.txt, mid.bin, c.txt -ComputerName 127.0.0.1 -Port $Port -Destination $into -ThrottleLimit 1 -ErrorVariable failures -ErrorAction SilentlyContinue
                [pscustomobject]@{
                    Errors = @($failures | ForEach-Object { [pscustomobject]@{ Id = $_.FullyQualifiedErrorId; Category = "$($_.CategoryInfo.Category)"; Target = "$($_.TargetObject)"; Message = $_.Exception.Message } })
                    Files  = @(Get-ChildItem -LiteralPath $into -Force -File | ForEach-Object { [pscustomobject]@{ Name = $_.Name; Sha256 = (Get-FileHash -LiteralPath $_.FullName).Hash } })
                } | ConvertTo-Json -Depth 4 -Compress
            }

            # The client runs in its own user and mount namespaces, where it may mount a small tmpfs that nobody else sees.
            $mountAndRun = @('--user', '--map-root-user', '--mount', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', $tiny.FullName)
            $child = Start-TestProcess -FilePath unshare -ArgumentList ($mountAndRun + (Get-PwshCommandLine) + @('-NoProfile', '-NonInteractive', '-File', $script))
            $result = Wait-TestProcess $child -TimeoutSec 60

            $result.ExitCode | Should -Be 0 -Because "stderr: $($result.StdErr)"
            $report = $result.StdOut | ConvertFrom-Json
            $report.Errors.Count | Should -Be 1 -Because ($report.Errors | Format-List | Out-String)
            $report.Errors[0].Id | Should -BeLike 'DestinationWriteFailed,*'
            $report.Errors[0].Category | Should -Be 'WriteError'
            $report.Errors[0].Target | Should -Be 'mid.bin'
            $report.Errors[0].Message | Should -Match 'No space left'
            ($report.Files | Sort-Object Name | ForEach-Object { "$($_.Name)=$($_.Sha256)" }) -join ' ' |
                Should -Be "a.txt=$($expected['a.txt']) c.txt=$($expected['c.txt'])"
        }
    }

    Context 'from a server in another process' {
        BeforeAll {
            $serverHost = Start-ServerHost -Path $share
            $port = $serverHost.Ports[0]
        }

        AfterAll {
            Stop-ServerHost $serverHost
        }

        It 'stops on Ctrl+C in a terminal mid-download: the process ends promptly, no file, and the partial file keeps its record' -Tag Pty {
            $script = New-ChildScript -ArgumentList $port, $destination -ScriptBlock {
                param($Port, $Destination)
                Get-RemoteFile -Name big.bin -Port $Port -Destination $Destination
                'download finished'
            }

            # Pressed once a verified piece is recorded: a download stopped before its first piece keeps nothing.
            $verdict = Start-PtyCtrlC -Script $script -File (Join-Path $destination '.big.bin.partial.state') | Receive-PtyVerdict

            $verdict.triggered | Should -BeTrue -Because "the download should have started; output: $($verdict.output)"
            $verdict.exited | Should -BeTrue -Because "pwsh should end after Ctrl+C; output: $($verdict.output)"
            # A hang guard, not a timing: a download that ignored Ctrl+C would run for the whole 2 GiB or forever.
            $verdict.seconds_to_exit | Should -BeLessThan 15
            $verdict.output | Should -Not -Match 'download finished'
            Test-Path -LiteralPath (Join-Path $destination 'big.bin') | Should -BeFalse
            Test-Path -LiteralPath (Join-Path $destination '.big.bin.partial.state') | Should -BeTrue -Because 'Ctrl+C keeps the verified pieces for a resume'
        }

        It 'refuses a second download into a file another process is downloading (DestinationInUse), and the first ends intact' {
            $partial = Join-Path $destination '.quarter.bin.partial'
            $client = Start-ChildPwsh -ArgumentList $port, $destination -ScriptBlock {
                param($Port, $Destination)
                Get-RemoteFile -Name quarter.bin -Port $Port -Destination $Destination -MaxBytesPerSecond 64MB -ErrorAction Stop
            }
            $null = Wait-Until -TimeoutSec 30 -Because 'the first download to start' { Test-Path -LiteralPath $partial }

            Get-RemoteFile -Name quarter.bin -Port $port -Destination $destination -ErrorVariable refused -ErrorAction SilentlyContinue
            $stillRunning = -not $client.Process.HasExited
            $result = Wait-TestProcess $client -TimeoutSec 60

            $refused.Count | Should -Be 1
            $refused[0].FullyQualifiedErrorId | Should -BeLike 'DestinationInUse,*'
            $refused[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
            $refused[0].Exception.Message | Should -BeLike "*$(Join-Path $destination 'quarter.bin')*"
            $stillRunning | Should -BeTrue -Because 'the refusal came while the first download held the file'
            $result.ExitCode | Should -Be 0 -Because "the first download should finish; stderr: $($result.StdErr)"
            Get-Sha256 (Join-Path $destination 'quarter.bin') | Should -Be $hashes['quarter.bin']
            @(Get-PartialFiles $destination).Count | Should -Be 0
        }

        It 'leaves no destination file when the client is killed (kill -9) mid-download' {
            # A killed process cannot tidy up: its hidden .big.bin.partial (and record) stay for the next download to resume.
            $partial = Join-Path $destination '.big.bin.partial'
            $client = Start-ChildPwsh -ArgumentList $port, $destination -ScriptBlock {
                param($Port, $Destination)
                Get-RemoteFile -Name big.bin -Port $Port -Destination $Destination
            }
            $null = Wait-Until -TimeoutSec 30 -Because 'the download to start' { Test-Path -LiteralPath $partial }

            Send-Signal -ProcessId $client.Id -Signal KILL
            $result = Wait-TestProcess $client -TimeoutSec 10

            $result.ExitCode | Should -Be 137
            Test-Path -LiteralPath (Join-Path $destination 'big.bin') | Should -BeFalse
        }
    }

    Context 'from a server that fails mid-transfer' {
        It 'reports a server process killed mid-transfer promptly, leaves no file, and the next run fetches only the missing part' {
            $serverHost = Start-ServerHost -Path $share
            $download = Invoke-InRunspace -ArgumentList $serverHost.Ports[0], $destination -ScriptBlock {
                param($Port, $Destination)
                Get-RemoteFile -Name big.bin -Port $Port -Destination $Destination -TimeoutSec 30
            }
            $null = Wait-Until -TimeoutSec 20 -Because 'the first verified pieces to be recorded' { Test-Path -LiteralPath (Join-Path $destination '.big.bin.partial.state') }

            Send-Signal -ProcessId $serverHost.Id -Signal KILL
            $killed = [Diagnostics.Stopwatch]::StartNew()
            $result = Wait-InRunspace $download -TimeoutSec 30

            # A hang guard: well inside the -TimeoutSec 30 a client that missed the closed connection would wait out.
            $killed.Elapsed.TotalSeconds | Should -BeLessThan 15
            $result.Errors.Count | Should -Be 1
            $result.Errors[0].FullyQualifiedErrorId | Should -Match '^(IncompleteTransfer|ServerUnreachable),'
            $result.Errors[0].CategoryInfo.Category | Should -Be ConnectionError
            $result.Errors[0].Exception.Message | Should -Match "localhost:$($serverHost.Ports[0])"
            Test-Path -LiteralPath (Join-Path $destination 'big.bin') | Should -BeFalse

            $restarted = Start-ServerHost -Path $share
            try {
                $file = Get-RemoteFile -Name big.bin -Port $restarted.Ports[0] -Destination $destination -PassThru -ErrorAction Stop
                $log = Get-ServerHostLog $restarted
            }
            finally { Stop-ServerHost $restarted }

            $file.BytesResumed | Should -BeGreaterThan 0
            [long]$sent = 0
            foreach ($record in $log.Records) { if ($record.Request -eq 'Read') { $sent += [long]$record.Bytes } }
            $sent | Should -Be (2GB - $file.BytesResumed) -Because 'the restarted server sends only the pieces the first run did not verify'
            $sourceHash, $downloadedHash = Get-Sha256 (Join-Path $share 'big.bin'), $file.FullName
            $downloadedHash | Should -Be $sourceHash
            @(Get-PartialFiles $destination).Count | Should -Be 0
        }

        It 'reports a server hung mid-transfer (SIGSTOP) as ServerTimeout within -TimeoutSec, and leaves no file but the resumable partial' {
            $serverHost = Start-ServerHost -Path $share
            try {
                $download = Invoke-InRunspace -ArgumentList $serverHost.Ports[0], $destination -ScriptBlock {
                    param($Port, $Destination)
                    Get-RemoteFile -Name big.bin -Port $Port -Destination $Destination -TimeoutSec 3
                }
                $null = Wait-Until -TimeoutSec 20 -Because 'a verified piece to be recorded' { Test-Path -LiteralPath (Join-Path $destination '.big.bin.partial.state') }

                Send-Signal -ProcessId $serverHost.Id -Signal STOP
                $hung = [Diagnostics.Stopwatch]::StartNew()
                $result = Wait-InRunspace $download -TimeoutSec 30

                $hung.Elapsed.TotalSeconds | Should -BeLessThan 20 -Because '-TimeoutSec 3 bounds the wait for data (the default would wait 30 s)'
                $result.Errors.Count | Should -Be 1
                $result.Errors[0].FullyQualifiedErrorId | Should -BeLike 'ServerTimeout,*'
                $result.Errors[0].CategoryInfo.Category | Should -Be OperationTimeout
                Test-Path -LiteralPath (Join-Path $destination 'big.bin') | Should -BeFalse
                Test-Path -LiteralPath (Join-Path $destination '.big.bin.partial.state') | Should -BeTrue
            }
            finally {
                Send-Signal -ProcessId $serverHost.Id -Signal CONT
                Stop-ServerHost $serverHost -TimeoutSec 1
            }
        }
    }
}

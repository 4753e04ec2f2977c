BeforeAll {
    . $PSScriptRoot/common.ps1
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Start-FileShareServer' {
    BeforeEach {
        $share = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        $helloHash = New-TestFile (Join-Path $share 'hello.txt') -Length 100
    }

    AfterEach {
        Remove-TestJobs
        Stop-TestProcesses
    }

    It 'serves on port 0 from a job that Get-Job lists and that reports the real port' {
        $job = Start-FileShareServer -Port 0 -Path $share

        $job.Port | Should -BeGreaterThan 0
        $job.State | Should -Be Running
        $job.Root | Should -Be ([IO.Path]::GetFullPath($share))
        $listed = Get-Job -Id $job.Id
        $listed.PSJobTypeName | Should -Be FileShareServerJob
        $listed.Port | Should -Be $job.Port
        (Get-RemoteFileList -Port $job.Port).Name | Should -Be 'hello.txt'
    }

    It 'starts one server per port of a range typed bare, as in -Port 5000..5002' {
        $first = Wait-Until -Because 'three consecutive free ports' {
            $base = Get-FreePort
            if ($base -lt 65533 -and (Test-PortFree ($base + 1)) -and (Test-PortFree ($base + 2))) { $base }
        }
        $last = $first + 2

        $jobs = & ([scriptblock]::Create("Start-FileShareServer -Port $first..$last -Path '$share'"))

        $jobs.Port | Should -Be @($first, ($first + 1), $last)
        # Each server's listing is written as it answers, so the order across servers is not fixed.
        (Get-RemoteFileList -Port $jobs.Port).Port | Sort-Object | Should -Be @($first, ($first + 1), $last)
    }

    It 'writes one request record per request to the job output (Receive-Job)' {
        $job = Start-FileShareServer -Port 0 -Path $share
        $null = Get-RemoteFile -Name hello.txt -Port $job.Port -Destination (Join-Path $TestDrive 'dl-log')

        # A verified download is two requests: the file's digest, then its bytes.
        $records = @(Wait-Until -Because 'the read to be logged' { $r = @(Receive-Job $job -Keep); if ($r.Count -ge 2) { , $r } })

        $records.Count | Should -Be 2
        $records.ForEach({ "$($_.Request)" }) | Should -Be @('Hash', 'Read')
        $records.Port | Should -Be @($job.Port, $job.Port)
        $records.Path | Should -Be @('hello.txt', 'hello.txt')
        $records.Outcome | Should -Be @('Ok', 'Ok')
        $records[1].Bytes | Should -Be 100
        $records[1].RemoteEndPoint | Should -Not -BeNullOrEmpty
        $job.Requests | Should -Be 2
        $job.BytesSent | Should -Be 100
    }

    It 'restarts on the same port at once after a stop, even with a connection open at the stop' {
        $job = Start-FileShareServer -Port 0 -Path $share
        $port = $job.Port
        $null = Get-RemoteFileList -Port $port
        # A client still connected when the server stops makes the server close first (its side lingers in TIME_WAIT).
        $idle = [Net.Sockets.TcpClient]::new('127.0.0.1', $port)
        try {
            Stop-FileShareServer -Port $port -Timeout 0
            $job.State | Should -Be Stopped

            $again = Start-FileShareServer -Port $port -Path $share -ErrorAction Stop

            $again.Port | Should -Be $port
            $again.State | Should -Be Running
            (Get-RemoteFileList -Port $port -ErrorAction Stop).Name | Should -Be 'hello.txt'
        }
        finally { $idle.Dispose() }
    }

    It 'reports a port in use as a non-terminating PortInUse error naming the port, and starts the other ports' {
        $taken = Start-FileShareServer -Port 0 -Path $share
        $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::IPv6Any, 0)
        $listener.Server.DualMode = $true
        $listener.Start()
        try {
            $busyElsewhere = $listener.LocalEndpoint.Port
            $free = Get-FreePort -Count 2

            $jobs = Start-FileShareServer -Port $free[0], $taken.Port, $busyElsewhere, $free[1] -Path $share -ErrorVariable startErrors -ErrorAction SilentlyContinue

            @($jobs).Port | Should -Be $free
            $startErrors.Count | Should -Be 2
            foreach ($pair in @(@($startErrors[0], $taken.Port), @($startErrors[1], $busyElsewhere))) {
                $record, $port = $pair
                $record.FullyQualifiedErrorId | Should -BeLike 'PortInUse,*'
                $record.CategoryInfo.Category | Should -Be ResourceBusy
                $record.Exception.Message | Should -Match "\b$port\b"
                $record.TargetObject | Should -Be $port
            }
            $taken.State | Should -Be Running
            (Get-RemoteFileList -Port $taken.Port).Name | Should -Be 'hello.txt'
        }
        finally { $listener.Stop() }
    }

    It 'is stopped by Stop-Job: the job is Stopped and the port is free' {
        $job = Start-FileShareServer -Port 0 -Path $share
        $port = $job.Port

        Stop-Job -Id $job.Id

        Wait-Until -TimeoutSec 10 { $job.State -eq 'Stopped' } | Should -BeTrue
        Test-PortFree $port | Should -BeTrue
        $failure = { Get-RemoteFileList -Port $port -ErrorAction Stop } | Should -Throw -ErrorId 'ServerUnreachable,*' -PassThru
        $failure.CategoryInfo.Category | Should -Be ConnectionError
        $next = Start-FileShareServer -Port $port -Path $share -ErrorAction Stop
        $next.Port | Should -Be $port
    }

    It 'frees its ports when the pwsh that started the servers exits' {
        $portFile = Join-Path $TestDrive 'exiting-host-ports.txt'
        $child = Start-ChildPwsh -ArgumentList $share, $portFile -ScriptBlock {
            param($Share, $PortFile)
            $jobs = Start-FileShareServer -Port 0, 0 -Path $Share -ErrorAction Stop
            $null = Get-RemoteFileList -Port $jobs.Port -ErrorAction Stop
            Set-Content -LiteralPath $PortFile -Value ($jobs.Port -join ',')
            # The script ends here with both servers running; pwsh must still exit, and the ports be freed.
        }

        $result = Wait-TestProcess $child -TimeoutSec 30

        $result.ExitCode | Should -Be 0 -Because $result.StdErr
        $ports = [int[]]((Get-Content -LiteralPath $portFile -Raw).Trim() -split ',')
        $ports.Count | Should -Be 2
        foreach ($port in $ports) { Test-PortFree $port | Should -BeTrue -Because "port $port belonged to the exited process" }
        (Start-FileShareServer -Port $ports -Path $share -ErrorAction Stop).Port | Should -Be $ports
    }

    It 'with -Wait, serves in the foreground, naming where it listens, and stops on Ctrl+C in a terminal, freeing the port' -Tag Pty {
        $port = Get-FreePort
        $script = New-ChildScript -ArgumentList $port, $share -ScriptBlock {
            param($Port, $Share)
            Start-FileShareServer -Port $Port -Path $Share -BindAddress 127.0.0.1 -Wait | ForEach-Object { "served $($_.Request) $($_.Path) $($_.Outcome)" }
        }
        # Ctrl+C is pressed once the foreground server has printed the record of the download below.
        $pty = Start-PtyCtrlC -Script $script -Marker 'served Read hello.txt Ok'
        Wait-ServerListening -Port $port -ComputerName 127.0.0.1
        $downloaded = Get-RemoteFile -Name hello.txt -ComputerName 127.0.0.1 -Port $port -Destination (Join-Path $TestDrive 'dl-wait') -PassThru
        (Get-Sha256 $downloaded.FullName) | Should -Be $helloHash

        $verdict = Receive-PtyVerdict $pty

        $verdict.interrupted | Should -BeTrue -Because $verdict.output
        $verdict.exited | Should -BeTrue -Because "pwsh should end after Ctrl+C; it printed: $($verdict.output)"
        # A hang guard: a server that ignored Ctrl+C would serve forever.
        $verdict.seconds_to_exit | Should -BeLessThan 15
        $verdict.output | Should -Match "sharing '.+' on 127\.0\.0\.1:$port\. Press Ctrl\+C to stop"
        Test-PortFree $port | Should -BeTrue
    }

    It 'with -Wait, stops on SIGTERM (systemd, docker stop) as on Ctrl+C: the transfer in flight finishes, its record is written, the process exits 0' {
        $bigHash = New-TestFile (Join-Path $share 'big.bin') -Length (4MB)
        $port = Get-FreePort
        $server = Start-ChildPwsh -ArgumentList $port, $share -ScriptBlock {
            param($Port, $Share)
            Start-FileShareServer -Port $Port -Path $Share -BindAddress 127.0.0.1 -Wait | ForEach-Object { "served $($_.Request) $($_.Path) $($_.Outcome)" }
            'after the server'
        }
        Wait-ServerListening -Port $port -ComputerName 127.0.0.1
        $destination = Join-Path $TestDrive 'dl-term'
        # About two seconds at the cap: the drain (5 s) lets it finish; the runtime's default would cut it at once.
        $download = Invoke-InRunspace -ArgumentList $port, $destination -ScriptBlock {
            param($Port, $Destination)
            Get-RemoteFile -Name big.bin -ComputerName 127.0.0.1 -Port $Port -Destination $Destination -MaxBytesPerSecond 2MB
        }
        $partial = Join-Path $destination '.big.bin.partial'
        # A hang guard: the module's import and the server's first hash can take seconds on a loaded machine.
        $null = Wait-Until -TimeoutSec 60 -Because 'the download to be under way' { $download.Handle.IsCompleted -or (Test-Path -LiteralPath $partial) }
        $download.Handle.IsCompleted | Should -BeFalse -Because 'the download should still be running when SIGTERM is sent'

        Send-Signal -ProcessId $server.Id -Signal TERM
        $served = Wait-TestProcess $server -TimeoutSec 20
        $downloaded = Wait-InRunspace $download -TimeoutSec 20

        $served.ExitCode | Should -Be 0 -Because $served.StdErr
        $served.StdOut | Should -Match 'served Read big\.bin Ok'
        $served.StdOut | Should -Match 'after the server'
        $downloaded.Errors | Should -BeNullOrEmpty
        Get-Sha256 (Join-Path $destination 'big.bin') | Should -Be $bigHash
        Test-PortFree $port | Should -BeTrue
    }

    It 'with -Wait and its output redirected (a service''s log), writes each record as one unwrapped line' {
        $longName = ('l' * 200) + '.txt'
        $null = New-TestFile (Join-Path $share $longName) -Length 10
        $port = Get-FreePort
        $server = Start-ChildPwsh -ArgumentList $port, $share -ScriptBlock {
            param($Port, $Share)
            Start-FileShareServer -Port $Port -Path $Share -BindAddress 127.0.0.1 -Wait
        }
        Wait-ServerListening -Port $port -ComputerName 127.0.0.1
        Get-RemoteFile -Name $longName -ComputerName 127.0.0.1 -Port $port -Destination (Join-Path $TestDrive 'dl-lines') -ErrorAction Stop

        Send-Signal -ProcessId $server.Id -Signal TERM
        $served = Wait-TestProcess $server -TimeoutSec 20

        $served.ExitCode | Should -Be 0 -Because $served.StdErr
        $lines = @($served.StdOut -split '\r?\n' | Where-Object { $_ -and $_ -notmatch '^FileShare: sharing ' })
        $lines | Should -Match '^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ' -Because "every line should begin a record, none continue one, in:`n$($served.StdOut)"
        $lines -match ' Read ' | Should -Match "^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +$port 127\.0\.0\.1:\d+ +Read '$longName' 10 B in \d+ ms: Ok$"
    }

    It 'with -Wait in a thread job, leaves SIGTERM to end the whole process' {
        $port = Get-FreePort
        $server = Start-ChildPwsh -ArgumentList $port, $share -ScriptBlock {
            param($Port, $Share)
            $module = (Get-Module FileShare).Path
            $null = Start-ThreadJob { Import-Module $using:module; Start-FileShareServer -Port $using:Port -Path $using:Share -BindAddress 127.0.0.1 -Wait }
            # The foreground would go on for two minutes: a SIGTERM taken by the job's server would leave it running.
            Start-Sleep -Seconds 120
        }
        Wait-ServerListening -Port $port -ComputerName 127.0.0.1

        Send-Signal -ProcessId $server.Id -Signal TERM
        $ended = Wait-TestProcess $server -TimeoutSec 30

        $ended.ExitCode | Should -Be 143 -Because 'the runtime ends a process on SIGTERM with 128 + 15'
        Test-PortFree $port | Should -BeTrue
    }
}

BeforeAll {
    . $PSScriptRoot/common.ps1
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Stop-FileShareServer' {
    BeforeEach {
        $share = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        $null = New-TestFile (Join-Path $share 'hello.txt') -Length 10
    }

    AfterEach {
        Remove-TestJobs
    }

    It 'stops only the server on the given -Port and frees that port' {
        $jobs = Start-FileShareServer -Port 0, 0 -Path $share

        Stop-FileShareServer -Port $jobs[0].Port

        $jobs[0].State | Should -Be Stopped
        Test-PortFree $jobs[0].Port | Should -BeTrue
        $jobs[1].State | Should -Be Running
        (Get-RemoteFileList -Port $jobs[1].Port).Name | Should -Be 'hello.txt'
    }

    It 'stops every server job piped from Get-Job and leaves other jobs alone' {
        $jobs = Start-FileShareServer -Port 0, 0, 0 -Path $share
        $other = Start-ThreadJob { Wait-Event -SourceIdentifier never -Timeout 120 }
        $null = Wait-Until -TimeoutSec 10 { $other.State -eq 'Running' }

        Get-Job | Stop-FileShareServer

        foreach ($job in $jobs) {
            $job.State | Should -Be Stopped
            Test-PortFree $job.Port | Should -BeTrue -Because "server $($job.Id) was stopped"
        }
        $other.State | Should -Be Running
    }

    It 'stops every server of the session with -All, and -PassThru returns the stopped jobs' {
        $jobs = Start-FileShareServer -Port 0, 0 -Path $share

        $stopped = Stop-FileShareServer -All -PassThru

        @($stopped).Id | Sort-Object | Should -Be (@($jobs).Id | Sort-Object)
        foreach ($job in $jobs) {
            $job.State | Should -Be Stopped
            Test-PortFree $job.Port | Should -BeTrue
        }
    }

    It 'reports a port without a server as a non-terminating ServerNotFound error and still stops the others' {
        $job = Start-FileShareServer -Port 0 -Path $share
        $nobody = Get-FreePort

        Stop-FileShareServer -Port $nobody, $job.Port -ErrorVariable stopErrors -ErrorAction SilentlyContinue

        $stopErrors.Count | Should -Be 1
        $stopErrors[0].FullyQualifiedErrorId | Should -BeLike 'ServerNotFound,*'
        $stopErrors[0].CategoryInfo.Category | Should -Be ObjectNotFound
        $stopErrors[0].Exception.Message | Should -Match "\b$nobody\b"
        $job.State | Should -Be Stopped
        Test-PortFree $job.Port | Should -BeTrue
    }

    It 'frees the port at once while a download is in flight, and the transfer ends within -Timeout' {
        New-SparseFile (Join-Path $share 'big.bin') -Length 3GB
        $job = Start-FileShareServer -Port 0 -Path $share
        $destination = Join-Path $TestDrive 'dl-stop'
        $download = Invoke-InRunspace -ArgumentList $job.Port, $destination -ScriptBlock {
            param($Port, $Destination)
            Get-RemoteFile -Name big.bin -Port $Port -Destination $Destination
        }
        $partial = Join-Path $destination '.big.bin.partial'
        $null = Wait-Until -TimeoutSec 20 -Because 'a verified piece to be recorded' { Test-Path -LiteralPath "$partial.state" }

        $clock = [Diagnostics.Stopwatch]::StartNew()
        Stop-FileShareServer -Port $job.Port -Timeout 1
        # Under the default drain of 10 s, which a -Timeout that was not honoured would wait out.
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 9
        $job.State | Should -Be Stopped
        Test-PortFree $job.Port | Should -BeTrue

        $result = Wait-InRunspace $download -TimeoutSec 15
        $result.Errors.Count | Should -Be 1
        $result.Errors[0].FullyQualifiedErrorId | Should -Match '^(IncompleteTransfer|ServerUnreachable),'
        $result.Errors[0].CategoryInfo.Category | Should -Be ConnectionError
        Test-Path -LiteralPath (Join-Path $destination 'big.bin') | Should -BeFalse
        Test-Path -LiteralPath "$partial.state" | Should -BeTrue -Because 'the cut download keeps its verified pieces for a resume'
    }
}

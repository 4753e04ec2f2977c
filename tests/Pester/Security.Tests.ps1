BeforeAll {
    . $PSScriptRoot/common.ps1
    # A key in this process's environment would change what every test here means.
    $savedKey = $env:FILESHARE_ACCESS_KEY
    $env:FILESHARE_ACCESS_KEY = $null
}

AfterAll {
    $env:FILESHARE_ACCESS_KEY = $savedKey
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Access keys and TLS across processes' {
    BeforeEach {
        $share = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        $secretHash = New-TestFile (Join-Path $share 'secret.bin') -Length 300000
    }

    AfterEach {
        Remove-TestJobs
        Stop-TestProcesses
    }

    It 'a server and a client that both read $env:FILESHARE_ACCESS_KEY share a file; a client without it gets AuthenticationRequired and nothing' {
        $key = [Convert]::ToBase64String([Security.Cryptography.RandomNumberGenerator]::GetBytes(24))
        $serverHost = Start-ServerHost -Path $share -Environment @{ FILESHARE_ACCESS_KEY = $key }
        $port = $serverHost.Ports[0]
        $destination = Join-Path $TestDrive 'with-key'

        $client = Start-ChildPwsh -ArgumentList $port, $destination -Environment @{ FILESHARE_ACCESS_KEY = $key } -ScriptBlock {
            param($Port, $Destination)
            Get-RemoteFile secret.bin -Port $Port -Destination $Destination -ErrorAction Stop
        }
        $result = Wait-TestProcess $client -TimeoutSec 60
        $refused = $null
        $listed = Get-RemoteFileList -Port $port -ErrorVariable refused -ErrorAction SilentlyContinue
        $log = Get-ServerHostLog $serverHost

        $result.ExitCode | Should -Be 0 -Because $result.StdErr
        Get-Sha256 (Join-Path $destination 'secret.bin') | Should -Be $secretHash
        $listed | Should -BeNullOrEmpty
        $refused.Count | Should -Be 1
        $refused[0].FullyQualifiedErrorId | Should -BeLike 'AuthenticationRequired,*'
        "$($refused[0].CategoryInfo.Category)" | Should -Be AuthenticationError
        $refused[0].Exception.Message | Should -BeLike "*localhost:$port*"
        @($log.Records | Where-Object Outcome -EQ AuthenticationRequired).Request | Should -Be 'Handshake'
        @($log.Records | Where-Object Request -EQ List) | Should -BeNullOrEmpty
        Stop-ServerHost $serverHost
    }

    It '-SelfSigned keeps one certificate under the data folder across restarts and a client pins its printed thumbprint' -Skip:$IsWindows {
        $data = Join-Path $TestDrive 'data'
        $ready = Join-Path $TestDrive 'self-signed.json'
        $server = Start-ChildPwsh -ArgumentList $share, $ready -Environment @{ XDG_DATA_HOME = $data; HOME = (Join-Path $TestDrive 'home') } -ScriptBlock {
            param($Share, $Ready)
            $ErrorActionPreference = 'Stop'
            $first = Start-FileShareServer -Port 0 -Path $Share -BindAddress 127.0.0.1 -SelfSigned 6>&1
            Stop-FileShareServer -All
            $second = Start-FileShareServer -Port 0 -Path $Share -BindAddress 127.0.0.1 -SelfSigned 6>&1
            $job = $second | Where-Object { $_ -is [FileShare.PowerShell.Jobs.FileShareServerJob] }
            @{
                Port     = $job.Port
                Messages = @(($first + $second) | Where-Object { $_ -is [Management.Automation.InformationRecord] } | ForEach-Object { "$($_.MessageData)" })
            } | ConvertTo-Json | Set-Content "$Ready.tmp"
            Move-Item "$Ready.tmp" $Ready
            $null = [Console]::In.ReadLine()
        }
        $null = Wait-Until -TimeoutSec 60 -Because 'the self-signed server to start' {
            if ($server.Process.HasExited) { throw "The server exited early: $(Get-TaskText $server.StdErr)" }
            Test-Path $ready
        }
        $state = Get-Content $ready -Raw | ConvertFrom-Json
        $thumbprints = @($state.Messages | ForEach-Object { if ($_ -match 'SHA-256 thumbprint ([0-9A-F]{64})') { $Matches[1] } })
        $destination = Join-Path $TestDrive 'pinned'

        Get-RemoteFile secret.bin -ComputerName 127.0.0.1 -Port $state.Port -Destination $destination -CertificateThumbprint $thumbprints[0] -ErrorAction Stop
        $kept = @(Get-ChildItem (Join-Path $data 'FileShare/certificates') -Filter *.pfx)
        $server.Process.StandardInput.WriteLine('exit')

        $thumbprints.Count | Should -Be 2
        $thumbprints[1] | Should -Be $thumbprints[0]
        Get-Sha256 (Join-Path $destination 'secret.bin') | Should -Be $secretHash
        $kept.Count | Should -Be 1
        $kept[0].UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite')
        [Security.Cryptography.X509Certificates.X509Certificate2]::new($kept[0].FullName).Thumbprint | Should -Not -BeNullOrEmpty
    }

    It 'the python client of the original program gets -2e from a server with a key, and no bytes of the file' {
        $job = Start-FileShareServer -Port 0 -Path $share -BindAddress 127.0.0.1 -AccessKey (ConvertTo-SecureString 'k' -AsPlainText -Force)
        $output = Join-Path $TestDrive 'seed-out.bin'

        $seed = Start-TestProcess -FilePath python3 -ArgumentList (Join-Path $global:FileSharePeers 'seed_client.py'), '127.0.0.1', $job.Port, 'secret.bin', $output
        $result = Wait-TestProcess $seed -TimeoutSec 30
        $records = @(Wait-Until -Because 'the refusal to be logged' { $r = @(Receive-Job $job -Keep); if ($r.Count -ge 1) { , $r } })

        $result.ExitCode | Should -Be 3 -Because 'seed_client.py exits 3 when the server answers -2e'
        Test-Path $output | Should -BeFalse
        "$($records[0].Request)" | Should -Be SeedGet
        $records[0].Outcome | Should -Be AuthenticationRequired
        $job.BytesSent | Should -Be 0
    }
}

BeforeAll {
    . $PSScriptRoot/common.ps1

    # The relay the cmdlet tests use: it passes a server's bytes on at a fixed rate, so "halfway" lasts long enough
    # to act on, on any machine.
    if (-not ('FileShare.PowerShell.Tests.Support.ThrottledRelay' -as [type])) {
        # The test project compiles it with implicit usings; Add-Type needs them spelled out.
        $source = Get-Content -Raw -LiteralPath (Join-Path $PSScriptRoot '../FileShare.PowerShell.Tests/Support/ThrottledRelay.cs')
        Add-Type -TypeDefinition ("using System; using System.Threading; using System.Threading.Tasks;`n" + $source)
    }
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Get-RemoteFile from several server processes' {
    It 'downloads 1 GiB from three servers, one killed halfway, with the right SHA-256' {
        # Sparse, with distinct data every 32 MiB: quick to make, and pieces in the wrong place would show.
        $original = Join-Path $TestDrive 'original/big.bin'
        New-SparseFile $original -Length 1GB -DataAt (0..31 | ForEach-Object { $_ * 32MB + 1000 })
        $hash = Get-Sha256 $original
        # Hard links: three shares, one copy on disk.
        $shares = foreach ($i in 1..3) {
            $folder = New-Item -ItemType Directory -Path (Join-Path $TestDrive "share$i")
            $null = New-Item -ItemType HardLink -Path (Join-Path $folder 'big.bin') -Target $original
            $folder.FullName
        }
        $servers = @(Start-ServerHost -Path $shares -Separate)
        $relays = @()
        try {
            # Hash before the relays start pacing (they pace from connection time).
            $null = Get-RemoteFileList -ComputerName 127.0.0.1 -Port $servers.Ports -Hash -ErrorAction Stop
            $relays = @(foreach ($server in $servers) { [FileShare.PowerShell.Tests.Support.ThrottledRelay]::new($server.Ports[0], 32MB) })
            $destination = Join-Path $TestDrive 'dl'
            $download = Invoke-InRunspace -ArgumentList ([int[]]$relays.Port), $destination -ScriptBlock {
                param([int[]] $Ports, $Destination)
                $file = Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Ports -Name big.bin |
                    Get-RemoteFile -Destination $Destination -PassThru -WarningVariable dropped -WarningAction SilentlyContinue
                [pscustomobject]@{ File = $file; Dropped = @($dropped) }
            }
            $state = Join-Path $destination '.big.bin.partial.state'
            $null = Wait-Until -TimeoutSec 30 -Because 'about half of the pieces to be verified' {
                $record = [FileShare.PartialState]::TryRead($state)
                $download.Handle.IsCompleted -or ($record -and $record.Held.HeldCount -ge 112)
            }

            # Killed before anything else: on a loaded machine even an assertion here can take seconds.
            Send-Signal -ProcessId $servers[1].Id -Signal KILL
            $download.Handle.IsCompleted | Should -BeFalse -Because "the download should still have been running; errors: $($download.PowerShell.Streams.Error)"
            $result = Wait-InRunspace $download -TimeoutSec 60

            $result.Errors | Should -BeNullOrEmpty
            $outcome = $result.Output[0]
            $outcome.File.Sha256 | Should -Be $hash
            Get-Sha256 $outcome.File.FullName | Should -Be $hash
            @($outcome.Dropped).Count | Should -Be 1 -Because "the killed server is dropped; bytes per source: $($outcome.File.Sources | Out-String)"
            "$($outcome.Dropped[0])" | Should -Match "127\.0\.0\.1:$($relays[1].Port)"
            $bySource = @{}
            foreach ($source in $outcome.File.Sources) { $bySource[$source.Endpoint] = $source.Bytes }
            $bySource.Count | Should -Be 3
            foreach ($relay in $relays) { $bySource["127.0.0.1:$($relay.Port)"] | Should -BeGreaterThan 0 }
            @(Get-ChildItem -LiteralPath $destination -Force -File).Name | Should -Be @('big.bin')
        }
        finally {
            foreach ($relay in $relays) { $relay.Dispose() }
            foreach ($server in $servers) { Stop-ServerHost $server -TimeoutSec 5 }
        }
    }
}

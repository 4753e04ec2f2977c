BeforeAll {
    . $PSScriptRoot/common.ps1
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Ten servers in one pwsh, two client pwsh processes downloading from all of them at once' {
    BeforeAll {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $root = Join-Path $TestDrive 'ten'
        $serverCount = 10
        # Per server, in a folder named after it so names are unique across servers: edge sizes around the 1 MiB client
        # chunk, unicode and space-bearing names, several types, and bulk files that keep transfers in flight long
        # enough to overlap. Server 1 also offers one 100 MiB file (a random 1 MiB block repeated).
        $layout = [ordered]@{
            'empty.bin'                   = 0
            'one-byte.txt'                = 1
            'chunk-minus-one.dat'         = 1MB - 1
            'chunk-plus-one.dat'          = 1MB + 1
            'naïve café ü 日本語 ✓.txt'   = 3000
            'with space report.csv'       = 50000
            'data.json'                   = 2048
            'photo.jpg'                   = 300000
            'archive.zip'                 = 700000
            'tool.ps1'                    = 512
            'docs/nested ñ/readme.md'     = 4096
        }
        # Bulk files: sparse (a random 8 KiB at each end, distinct per file), 16 MiB each, far more than the socket buffers
        # hold, so a server stays busy with each until the client has read most of it: twelve per server, so that even
        # one client alone keeps more than ten downloads in flight on every server.
        $bulkCount = 12
        $bulkSize = 16MB

        $expected = @{}
        $bulk = [ordered]@{}
        $shares = foreach ($s in 1..$serverCount) {
            $share = Join-Path $root "share$s"
            $seed = $s * 100
            foreach ($name in $layout.Keys) {
                $relative = 's{0:00}/{1}' -f $s, $name
                $expected[$relative] = New-TestFile (Join-Path $share $relative) -Length $layout[$name] -Seed ($seed++)
            }
            foreach ($b in 1..$bulkCount) {
                $relative = 's{0:00}/bulk-{1}.bin' -f $s, $b
                New-SparseFile (Join-Path $share $relative) -Length $bulkSize -DataAt 0, ($bulkSize - 8192) -Seed ($seed++)
                $bulk[$relative] = Join-Path $share $relative
            }
            $share
        }
        $bulkHashes = Get-Sha256 @($bulk.Values)
        $i = 0; foreach ($key in $bulk.Keys) { $expected[$key] = $bulkHashes[$i++] }
        $expected['s01/big-100MiB.bin'] = New-RepeatedFile (Join-Path $shares[0] 's01/big-100MiB.bin') -Count 100
        $perServer = @{}
        foreach ($key in $expected.Keys) { $perServer[$key.Substring(0, 3)] += 1 }

        $serverHost = Start-ServerHost -Path $shares

        $clients = foreach ($c in 1, 2) {
            $work = Join-Path $root "client$c"
            $null = New-Item -ItemType Directory -Path $work
            $client = Start-ChildPwsh -ArgumentList $serverHost.Ports, (Join-Path $work 'dl'), $work -ScriptBlock {
                param([int[]] $Ports, [string] $Destination, [string] $Work)
                $ErrorActionPreference = 'Stop'
                # Biggest first, round-robin over the servers, so every server gets its share of the transfers from the start.
                $list = @(Get-RemoteFileList -Port $Ports -Recurse | Group-Object Port |
                    ForEach-Object { $rank = 0; $_.Group | Sort-Object Length -Descending | ForEach-Object { [pscustomobject]@{ Rank = $rank++; File = $_ } } } |
                    Sort-Object Rank, { $_.File.Port } | ForEach-Object File)
                $null = New-Item -ItemType File -Path (Join-Path $Work 'ready')
                # Start together with the other client (the test creates 'go' once both are ready).
                while (-not (Test-Path (Join-Path $Work 'go'))) { Start-Sleep -Milliseconds 5 }

                $clock = [Diagnostics.Stopwatch]::StartNew()
                $startTicks = [DateTime]::UtcNow.Ticks
                $failures = $null
                # All transfers of this client at once: every server gets one request per file from this process.
                $downloaded = @($list | Get-RemoteFile -Destination $Destination -ThrottleLimit 240 -PassThru -ErrorAction SilentlyContinue -ErrorVariable failures)
                $seconds = $clock.Elapsed.TotalSeconds
                $endTicks = [DateTime]::UtcNow.Ticks

                # Every file now in the destination (hidden ones too, so a leftover .partial would show), with its SHA-256.
                $files = @(Get-ChildItem -LiteralPath $Destination -Recurse -File -Force)
                $streams = foreach ($file in $files) { [IO.FileStream]::new($file.FullName, 'Open', 'Read', 'Read', 1MB, [IO.FileOptions]::Asynchronous) }
                $tasks = [Threading.Tasks.Task[]]@(foreach ($stream in $streams) { [Security.Cryptography.SHA256]::HashDataAsync($stream).AsTask() })
                [Threading.Tasks.Task]::WaitAll($tasks)
                $streams | ForEach-Object Dispose
                $hashes = [ordered]@{}
                for ($i = 0; $i -lt $files.Count; $i++) {
                    $hashes[[IO.Path]::GetRelativePath($Destination, $files[$i].FullName).Replace('\', '/')] = [Convert]::ToHexString($tasks[$i].Result)
                }
                [ordered]@{
                    ProcessId  = $PID
                    Listed     = $list.Count
                    Downloaded = $downloaded.Count
                    Seconds    = $seconds
                    StartTicks = $startTicks
                    EndTicks   = $endTicks
                    Errors     = @($failures | ForEach-Object { "$($_.FullyQualifiedErrorId): $($_.Exception.Message)" })
                    Hashes     = $hashes
                } | ConvertTo-Json -Depth 3 | Set-Content -LiteralPath (Join-Path $Work 'result.json') -Encoding utf8
            }
            [pscustomobject]@{ Child = $client; Work = $work }
        }

        $null = Wait-Until -TimeoutSec 30 -Because 'both clients to list the servers' {
            foreach ($client in $clients) {
                if ($client.Child.Process.HasExited) { throw "Client $($client.Child.Id) exited early: $(Get-TaskText $client.Child.StdErr)" }
            }
            @($clients | Where-Object { Test-Path (Join-Path $_.Work 'ready') }).Count -eq $clients.Count
        }
        foreach ($client in $clients) { $null = New-Item -ItemType File -Path (Join-Path $client.Work 'go') }
        $exits = foreach ($client in $clients) { Wait-TestProcess $client.Child -TimeoutSec 50 }
        $results = foreach ($client in $clients) {
            $file = Join-Path $client.Work 'result.json'
            if (Test-Path $file) { Get-Content -LiteralPath $file -Raw | ConvertFrom-Json -AsHashtable } else { $null }
        }
        $log = Get-ServerHostLog $serverHost
        Stop-ServerHost $serverHost
        $elapsed = $clock.Elapsed.TotalSeconds
        $overlaps = foreach ($port in $serverHost.Ports) { Get-MaxOverlap @(Get-DownloadSpans @($log.Records | Where-Object Port -EQ $port)) }
        Write-Host ("    {0} files from ten servers, downloaded by two clients in {1} s, whole scenario {2:0.0} s; most downloads in flight at once per server: {3}" -f
            $expected.Count, (($results | ForEach-Object { '{0:0.00}' -f $_.Seconds }) -join ' s and '), $elapsed, ($overlaps -join ' '))
    }

    AfterAll {
        Remove-Item -LiteralPath $root -Recurse -Force -ErrorAction Ignore
    }

    It 'runs ten servers on ten different free ports in a pwsh process other than the clients' {
        $serverHost.Ports.Count | Should -Be 10
        @($serverHost.Ports | Sort-Object -Unique).Count | Should -Be 10
        $serverHost.Ports | Should -Not -Contain 0
        $processes = @($serverHost.Id, $PID) + @($results | ForEach-Object { $_.ProcessId })
        @($processes | Sort-Object -Unique).Count | Should -Be 4
    }

    It 'lets both clients finish without errors' {
        foreach ($exit in $exits) { $exit.ExitCode | Should -Be 0 -Because $exit.StdErr }
        foreach ($result in $results) {
            $result | Should -Not -BeNullOrEmpty
            $result.Errors | Should -BeNullOrEmpty
            $result.Listed | Should -Be $expected.Count
            $result.Downloaded | Should -Be $expected.Count
        }
    }

    It 'had both clients downloading at the same time' {
        $latestStart = ($results | ForEach-Object { [long]$_.StartTicks } | Measure-Object -Maximum).Maximum
        $earliestEnd = ($results | ForEach-Object { [long]$_.EndTicks } | Measure-Object -Minimum).Minimum
        $latestStart | Should -BeLessThan $earliestEnd
    }

    It 'gives every download the SHA-256 of its source, in each client' {
        foreach ($result in $results) {
            @($result.Hashes.Keys | Sort-Object) | Should -Be @($expected.Keys | Sort-Object) -Because 'exactly the shared files arrive, no .partial left over'
            foreach ($name in $expected.Keys) {
                $result.Hashes[$name] | Should -Be $expected[$name] -Because "'$name' must arrive intact"
            }
        }
    }

    It 'served every file to both clients, each server with at least ten downloads in flight at once' {
        foreach ($s in 1..$serverCount) {
            $port = $serverHost.Ports[$s - 1]
            $reads = @($log.Records | Where-Object { $_.Port -eq $port -and $_.Request -eq 'Read' })
            $reads.Count | Should -Be (2 * $perServer['s{0:00}' -f $s]) -Because "both clients fetch every file of server $s once"
            @($reads | Where-Object Outcome -NE 'Ok').Count | Should -Be 0
            # Each download spans its digest request's arrival to the last byte of its read; count how many overlap at once.
            Get-MaxOverlap @(Get-DownloadSpans @($log.Records | Where-Object Port -EQ $port)) | Should -BeGreaterOrEqual 10 -Because "server $s (port $port) should serve ten or more downloads concurrently"
            ($log.Servers | Where-Object Port -EQ $port).TotalConnections | Should -BeGreaterOrEqual 10
        }
    }
}

Describe 'The original (seed) protocol' {
    BeforeAll {
        $share = Join-Path $TestDrive 'seed-share'
        $names = 'empty.bin', 'one.txt', 'chunk-plus-one.dat', 'naïve café ü.txt', 'two words.csv'
        $sizes = 0, 1, (1MB + 1), 5000, 123457
        $expected = @{}
        for ($i = 0; $i -lt $names.Count; $i++) { $expected[$names[$i]] = New-TestFile (Join-Path $share $names[$i]) -Length $sizes[$i] -Seed (900 + $i) }

        $seedServer = Start-TestProcess -FilePath python3 -ArgumentList (Join-Path $FileSharePeers 'seed_server.py'), $share, '127.0.0.1', '0' -KeepStdOut
        $portLine = $seedServer.Process.StandardOutput.ReadLineAsync()
        if (-not $portLine.Wait(15000)) { throw "seed_server.py did not report its port: $(Get-TaskText $seedServer.StdErr)" }
        $seedPort = [int]$portLine.Result
    }

    AfterAll {
        Remove-TestJobs
        Stop-TestProcesses
    }

    It 'Get-RemoteFile -Protocol Seed downloads from the python seed server intact' {
        $destination = Join-Path $TestDrive 'seed-explicit'

        Get-RemoteFile -Name $names -ComputerName 127.0.0.1 -Port $seedPort -Destination $destination -Protocol Seed -ErrorAction Stop

        Get-Sha256 ($names | ForEach-Object { Join-Path $destination $_ }) | Should -Be @($names | ForEach-Object { $expected[$_] })
    }

    It 'Get-RemoteFile detects the seed server by itself (default -Protocol Auto)' {
        $destination = Join-Path $TestDrive 'seed-auto'

        $verbose = Get-RemoteFile -Name $names -ComputerName 127.0.0.1 -Port $seedPort -Destination $destination -ErrorAction Stop -Verbose 4>&1

        Get-Sha256 ($names | ForEach-Object { Join-Path $destination $_ }) | Should -Be @($names | ForEach-Object { $expected[$_] })
        @($verbose | Where-Object { "$_" -match 'Seed protocol' }).Count | Should -Be $names.Count
    }

    It 'reports a file the seed server lacks as RemoteFileNotFound' {
        $failure = { Get-RemoteFile -Name nope.txt -ComputerName 127.0.0.1 -Port $seedPort -Destination (Join-Path $TestDrive 'seed-none') -Protocol Seed -ErrorAction Stop } |
            Should -Throw -ErrorId 'RemoteFileNotFound,*' -PassThru
        $failure.CategoryInfo.Category | Should -Be ObjectNotFound
    }

    It 'Get-RemoteFileList against the seed server fails with SeedServerCannotList' {
        $failure = { Get-RemoteFileList -ComputerName 127.0.0.1 -Port $seedPort -ErrorAction Stop } | Should -Throw -PassThru

        $failure.FullyQualifiedErrorId | Should -BeLike 'SeedServerCannotList,*'
        $failure.CategoryInfo.Category | Should -Be NotImplemented
        $failure.Exception.Message | Should -Match ([regex]::Escape("127.0.0.1:$seedPort"))
    }

    It 'the python seed client downloads from Start-FileShareServer intact, and gets -1e for a missing file' {
        $job = Start-FileShareServer -Port 0 -Path $share
        $destination = Join-Path $TestDrive 'seed-client'
        $null = New-Item -ItemType Directory -Path $destination
        $client = Join-Path $FileSharePeers 'seed_client.py'

        $runs = foreach ($name in $names) {
            Start-TestProcess -FilePath python3 -ArgumentList $client, 'localhost', $job.Port, $name, (Join-Path $destination $name)
        }
        $missing = Start-TestProcess -FilePath python3 -ArgumentList $client, 'localhost', $job.Port, 'nope.txt', (Join-Path $destination 'nope.txt')

        foreach ($run in $runs) { (Wait-TestProcess $run -TimeoutSec 20).ExitCode | Should -Be 0 }
        Get-Sha256 ($names | ForEach-Object { Join-Path $destination $_ }) | Should -Be @($names | ForEach-Object { $expected[$_] })
        (Wait-TestProcess $missing -TimeoutSec 20).ExitCode | Should -Be 2 -Because 'seed_client.py exits 2 when the server answers -1e'
        $reads = @(Wait-Until -Because 'the seed requests to be logged' { $r = @(Receive-Job $job -Keep); if ($r.Count -ge $names.Count + 1) { , $r } })
        @($reads | Where-Object { "$($_.Request)" -eq 'SeedGet' }).Count | Should -Be ($names.Count + 1)
    }
}

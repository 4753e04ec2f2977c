# The recipe of docs/remoting.md, proven on one machine: 127.0.0.2, 127.0.0.3 and 127.0.0.4 (all loopback on Linux,
# no configuration needed) stand in for three hosts. Each "host" is its own pwsh process serving the same port on its
# own address, and this process pulls from all of them at once.

BeforeAll {
    . $PSScriptRoot/common.ps1

    $addresses = '127.0.0.2', '127.0.0.3', '127.0.0.4'

    # Per host, under <Root>/<address>: a file only it has (sizes around the 1 MiB client chunk), one in a sub-folder,
    # and same.txt, which every host has with different content. Returns the hashes by relative path and of each same.txt.
    function New-HostShares([string] $Root) {
        $unique = @{}
        $same = @{}
        $seed = 1
        foreach ($address in $addresses) {
            $share = Join-Path $Root $address
            $n = $address.Split('.')[-1]
            $unique["only-$n.bin"] = New-TestFile (Join-Path $share "only-$n.bin") -Length (1MB - 2 + [int]$n) -Seed ($seed++)
            $unique["sub/notes-$n.txt"] = New-TestFile (Join-Path $share "sub/notes-$n.txt") -Length 1000 -Seed ($seed++)
            $same[$address] = New-TestFile (Join-Path $share 'same.txt') -Bytes ([Text.Encoding]::UTF8.GetBytes("same.txt of $address"))
        }
        @{ Unique = $unique; Same = $same }
    }

    function Test-AddressPortFree([string] $Address, [int] $Port) {
        $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Parse($Address), $Port)
        try { $listener.Start(); $true }
        catch [Net.Sockets.SocketException] { $false }
        finally { $listener.Stop() }
    }

    function Wait-HostsListening {
        <# Until every address answers a listing on Port; throws early with the job's errors if Job (the hosts) ends. #>
        param([int] $Port, [Management.Automation.Job[]] $Job = @(), [double] $TimeoutSec = 60)
        foreach ($address in $addresses) {
            $null = Wait-Until -TimeoutSec $TimeoutSec -Because "a FileShare server to answer on $address`:$Port" {
                foreach ($j in $Job) {
                    if ($j.State -notin 'NotStarted', 'Running') {
                        throw "Host job '$($j.Name)' is $($j.State): $(($j | Receive-Job -Keep -ErrorAction Continue 2>&1) -join '; ')"
                    }
                }
                $failures = $null
                $null = Get-RemoteFileList -ComputerName $address -Port $Port -TimeoutSec 5 -ErrorAction SilentlyContinue -ErrorVariable failures
                -not $failures
            }
        }
    }

    function Invoke-PullAndAssert {
        <#
        The client side of the recipe: list every host, pipe the listing into Get-RemoteFile, one destination. Asserts
        that every file arrived intact and that same.txt is kept from one host and refused from the other two.
        #>
        param([int] $Port, [hashtable] $Layout, [string] $Destination)
        $listing = @(Get-RemoteFileList -ComputerName $addresses -Port $Port -Recurse)
        $failures = $null
        $files = @($listing | Get-RemoteFile -Destination $Destination -PassThru -ErrorAction SilentlyContinue -ErrorVariable failures)

        $listing.Count | Should -Be (3 * $addresses.Count)
        @($listing.ComputerName | Sort-Object -Unique) | Should -Be $addresses
        @($listing.Port | Sort-Object -Unique) | Should -Be @($Port) -Because 'every host serves the same port number'

        $files.Count | Should -Be ($Layout.Unique.Count + 1)
        $names = @($Layout.Unique.Keys | Sort-Object)
        Get-Sha256 @($names | ForEach-Object { Join-Path $Destination $_ }) | Should -Be @($names | ForEach-Object { $Layout.Unique[$_] })

        @($failures).Count | Should -Be 2 -Because "same.txt comes from three hosts: $(@($failures) -join '; ')"
        foreach ($failure in $failures) {
            $failure.FullyQualifiedErrorId | Should -BeLike 'DestinationConflict,*'
            $failure.CategoryInfo.Category | Should -Be ResourceExists
        }
        $losers = @($failures | ForEach-Object { $_.Exception.Endpoint.Split(':')[0] })
        $kept = @($addresses | Where-Object { $_ -notin $losers })
        $kept.Count | Should -Be 1 -Because "the conflicts name two different hosts ($($losers -join ', '))"
        foreach ($failure in $failures) { $failure.Exception.Message | Should -BeLike "*from $($kept[0]):$Port*" }
        Get-Sha256 (Join-Path $Destination 'same.txt') | Should -Be $Layout.Same[$kept[0]]
        @(Get-ChildItem -LiteralPath $Destination -Recurse -Force -File -Filter '.*.partial').Count | Should -Be 0
    }

    # SSH: a private sshd, started by the test, listening on the three addresses with a throw-away host key and an
    # authorized key of its own (nothing outside $TestDrive is configured). It runs as the current user; as root it
    # also needs its privilege separation folder /run/sshd, which the test never creates: when it is missing, sshd
    # runs in a private mount namespace with its own /run (unshare). A machine without what that takes fails the SSH
    # tests, saying what to install: a skip would let a run without them pass.
    function Find-Tool([string] $Name) {
        $command = Get-Command $Name -CommandType Application -ErrorAction Ignore | Select-Object -First 1
        if ($command) { return $command.Source }
        foreach ($folder in '/usr/sbin', '/usr/local/sbin', '/sbin') { if (Test-Path "$folder/$Name" -PathType Leaf) { return "$folder/$Name" } }
    }

    function Start-TestSshd {
        param([Parameter(Mandatory)] [string] $Folder, [Parameter(Mandatory)] [int] $Port)
        $sshd = Find-Tool sshd
        $keygen = Find-Tool ssh-keygen
        if (-not $sshd) { throw 'The SSH remoting tests need sshd, and this machine has none (Debian/Ubuntu: apt-get install openssh-server).' }
        if (-not (Find-Tool ssh) -or -not $keygen) { throw 'The SSH remoting tests need the ssh client and ssh-keygen, and this machine lacks them (Debian/Ubuntu: apt-get install openssh-client).' }
        $launcher = @()
        $isRoot = (& id -u) -eq '0'
        if ($isRoot -and -not (Test-Path /run/sshd)) {
            $unshare = Find-Tool unshare
            if (-not $unshare -or $(& $unshare --mount --propagation private true 2>$null; $LASTEXITCODE -ne 0)) {
                throw 'The SSH remoting tests run sshd as root, which needs /run/sshd (mkdir -m 755 /run/sshd) or a private mount namespace (unshare --mount), and neither is available here.'
            }
            $launcher = @($unshare, '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o mode=755 tmpfs /run && mkdir /run/sshd && exec "$0" "$@"')
        }

        $null = New-Item -ItemType Directory -Path $Folder -Force
        foreach ($key in 'host_key', 'client_key') {
            & $keygen -q -t ed25519 -N '' -C "fileshare-test-$key" -f (Join-Path $Folder $key)
            if ($LASTEXITCODE -ne 0) { throw "ssh-keygen failed for $key." }
        }
        Copy-Item (Join-Path $Folder 'client_key.pub') (Join-Path $Folder 'authorized_keys')
        # The client checks the host key strictly, against this file only.
        $hostKey = (Get-Content (Join-Path $Folder 'host_key.pub') -Raw).Trim().Split(' ')[0, 1] -join ' '
        "$(($addresses | ForEach-Object { "[$_]:$Port" }) -join ',') $hostKey" | Set-Content (Join-Path $Folder 'known_hosts')

        # The remote end of PowerShell remoting is 'pwsh -sshs', run as the sshd subsystem 'powershell'; a wrapper
        # script keeps paths with spaces out of sshd_config.
        $subsystem = Join-Path $Folder 'pwsh-subsystem.sh'
        $pwsh = Get-PwshCommandLine
        $pwsh = ($pwsh | ForEach-Object { "'" + $_.Replace("'", "'\''") + "'" }) -join ' '
        "#!/bin/sh`nexec $pwsh -sshs -NoLogo -NoProfile`n" | Set-Content -LiteralPath $subsystem -NoNewline
        [IO.File]::SetUnixFileMode($subsystem, [IO.UnixFileMode]'UserRead, UserWrite, UserExecute, GroupRead, GroupExecute, OtherRead, OtherExecute')

        $config = Join-Path $Folder 'sshd_config'
        @(
            "Port $Port"
            $addresses | ForEach-Object { "ListenAddress $_" }
            "HostKey $(Join-Path $Folder 'host_key')"
            "AuthorizedKeysFile $(Join-Path $Folder 'authorized_keys')"
            'PidFile none'
            'PubkeyAuthentication yes'
            'PasswordAuthentication no'
            'KbdInteractiveAuthentication no'
            'PermitRootLogin prohibit-password'
            'UsePAM no'
            'StrictModes no'
            "Subsystem powershell $subsystem"
        ) | Set-Content -LiteralPath $config

        $arguments = @($sshd, '-D', '-e', '-f', $config)
        if ($launcher) { $arguments = $launcher + $arguments }
        $process = Start-TestProcess -FilePath $arguments[0] -ArgumentList @($arguments | Select-Object -Skip 1)
        foreach ($address in $addresses) {
            $null = Wait-Until -TimeoutSec 15 -Because "sshd to listen on $address`:$Port" {
                if ($process.Process.HasExited) { throw "sshd exited ($($process.Process.ExitCode)): $(Get-TaskText $process.StdErr)" }
                $client = [Net.Sockets.TcpClient]::new()
                try { $client.ConnectAsync($address, $Port).Wait(1000) } catch { $false } finally { $client.Dispose() }
            }
        }
        @{
            Process    = $process
            Connection = @{
                Port        = $Port
                UserName    = [Environment]::UserName
                KeyFilePath = Join-Path $Folder 'client_key'
                Options     = @{
                    UserKnownHostsFile    = Join-Path $Folder 'known_hosts'
                    StrictHostKeyChecking = 'yes'
                    BatchMode             = 'yes'
                    IdentitiesOnly        = 'yes'
                    ConnectTimeout        = '10'
                    LogLevel              = 'ERROR'
                }
            }
        }
    }
}

AfterAll {
    Get-PSSession | Remove-PSSession
    Remove-TestJobs
    Stop-TestProcesses
}

# macOS answers on 127.0.0.1 only unless more loopback addresses are configured.
Describe 'Servers on several hosts, one client pulling from all of them' -Skip:$IsMacOS {
    BeforeAll {
        $manifest = $global:FileShareManifest
    }

    BeforeEach {
        $root = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        $layout = New-HostShares (Join-Path $root 'shares')
        $destination = Join-Path $root 'pulled'
        $port = Get-FreePort
    }

    AfterEach {
        Remove-TestJobs
    }

    It 'runs a server per host in its own Start-Job process on the same port, pulls them all into one folder, and Stop-Job frees the ports' {
        $jobs = foreach ($address in $addresses) {
            Start-Job -Name "host $address" -ArgumentList $manifest, $address, $port, (Join-Path $root "shares/$address") -ScriptBlock {
                param([string] $Manifest, [string] $Address, [int] $Port, [string] $Path)
                Import-Module $Manifest -ErrorAction Stop
                $PID
                Start-FileShareServer -BindAddress $Address -Port $Port -Path $Path -Wait
            }
        }
        Wait-HostsListening -Port $port -Job $jobs

        $hostPids = @($jobs | ForEach-Object { Receive-Job $_ -Keep | Where-Object { $_ -is [int] } })
        $hostPids.Count | Should -Be 3
        @($hostPids + $PID | Sort-Object -Unique).Count | Should -Be 4 -Because 'each host is a process of its own'
        $failures = $null
        $null = Get-RemoteFileList -ComputerName 127.0.0.1 -Port $port -TimeoutSec 5 -ErrorAction SilentlyContinue -ErrorVariable failures
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'ServerUnreachable,*' -Because 'each server listens on its own address only'
        $failures[0].CategoryInfo.Category | Should -Be ConnectionError

        Invoke-PullAndAssert -Port $port -Layout $layout -Destination $destination

        $jobs | Stop-Job
        foreach ($job in $jobs) { $job.State | Should -Be Stopped }
        foreach ($address in $addresses) {
            $null = Wait-Until -TimeoutSec 10 -Because "$address`:$port to be free" { Test-AddressPortFree $address $port }
        }
        # What each host logged came back through its job.
        foreach ($job in $jobs) {
            $reads = @(Receive-Job $job | Where-Object { $_ -isnot [int] -and "$($_.Request)" -eq 'Read' })
            $reads.Count | Should -BeGreaterOrEqual 2 -Because "$($job.Name) served its own files"
        }
    }

    Context 'through SSH remoting (Invoke-Command -HostName, New-PSSession -HostName) to a private sshd' {
        BeforeAll {
            # Throws, and so fails every test here, when the machine cannot run a private sshd.
            $ssh = Start-TestSshd -Folder (Join-Path $TestDrive 'sshd') -Port (Get-FreePort)
            $connection = $ssh.Connection
        }

        AfterAll {
            if ($ssh -and $ssh['Process'] -and -not $ssh.Process.Process.HasExited) { $ssh.Process.Process.Kill($true) }
        }

        It 'Invoke-Command -HostName a,b,c -AsJob serves in the foreground on each host, and Stop-Job stops them and frees the ports' {
            $job = Invoke-Command -HostName $addresses @connection -AsJob -ArgumentList $manifest, $port, (Join-Path $root 'shares') -ScriptBlock {
                param([string] $Manifest, [int] $Port, [string] $Root)
                Import-Module $Manifest -ErrorAction Stop
                # The address this session was reached on: SSH_CONNECTION is 'client-ip client-port server-ip server-port'.
                # (On real hosts, leave -BindAddress out: the default is every interface.)
                $address = ($env:SSH_CONNECTION -split ' ')[2]
                Start-FileShareServer -BindAddress $address -Port $Port -Path (Join-Path $Root $address) -Wait
            }
            Wait-HostsListening -Port $port -Job $job.ChildJobs

            Invoke-PullAndAssert -Port $port -Layout $layout -Destination $destination

            $job | Stop-Job
            $job.State | Should -Be Stopped
            foreach ($address in $addresses) {
                $null = Wait-Until -TimeoutSec 10 -Because "$address`:$port to be free" { Test-AddressPortFree $address $port }
            }
            $records = @(Receive-Job $job)
            foreach ($address in $addresses) {
                @($records | Where-Object { $_.PSComputerName -eq $address -and "$($_.Request)" -eq 'Read' }).Count |
                    Should -BeGreaterOrEqual 2 -Because "the request log of $address streams back with PSComputerName"
            }
        }

        It 'New-PSSession -HostName keeps the servers as jobs in persistent sessions until Stop-FileShareServer' {
            $sessions = New-PSSession -HostName $addresses @connection
            try {
                $servers = @(Invoke-Command -Session $sessions -ArgumentList $manifest, $port, (Join-Path $root 'shares') -ScriptBlock {
                    param([string] $Manifest, [int] $Port, [string] $Root)
                    Import-Module $Manifest -ErrorAction Stop
                    $address = ($env:SSH_CONNECTION -split ' ')[2]
                    Start-FileShareServer -BindAddress $address -Port $Port -Path (Join-Path $Root $address)
                })
                $servers.Count | Should -Be 3
                @($servers.PSComputerName | Sort-Object) | Should -Be $addresses
                # The jobs cross remoting with the server's own properties, not only those of every Job.
                foreach ($server in $servers) {
                    "$($server.State)" | Should -Be Running
                    $server.Location | Should -Be "$($server.PSComputerName):$port"
                    $server.Port | Should -Be $port
                    $server.BindAddress | Should -Be $server.PSComputerName
                    $server.Root | Should -Be (Join-Path $root 'shares' $server.PSComputerName)
                }
                $hostPids = @(Invoke-Command -Session $sessions { $PID })
                @($hostPids + $PID | Sort-Object -Unique).Count | Should -Be 4 -Because 'each session is a process of its own'
                Wait-HostsListening -Port $port

                Invoke-PullAndAssert -Port $port -Layout $layout -Destination $destination

                $figures = @(Invoke-Command -Session $sessions { Get-FileShareServer })
                $figures.Count | Should -Be 3
                foreach ($figure in $figures) {
                    $figure.Port | Should -Be $port
                    $figure.BindAddress | Should -Be $figure.PSComputerName
                    $figure.Requests | Should -BeGreaterOrEqual 3 -Because "$($figure.PSComputerName) listed and served files"
                }

                $stopped = @(Invoke-Command -Session $sessions { Stop-FileShareServer -All -PassThru })
                foreach ($server in $stopped) {
                    "$($server.State)" | Should -Be Stopped
                    $server.Requests | Should -BeGreaterOrEqual 3 -Because "the stopped job of $($server.PSComputerName) still carries its figures"
                    $server.BytesSent | Should -BeGreaterThan 0
                }
                foreach ($address in $addresses) { Test-AddressPortFree $address $port | Should -BeTrue -Because "$address`:$port is free once Stop-FileShareServer returns" }
            }
            finally { $sessions | Remove-PSSession }
        }
    }
}

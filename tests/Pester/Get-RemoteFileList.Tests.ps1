BeforeAll {
    . $PSScriptRoot/common.ps1
    $shareA = Join-Path $TestDrive 'a'
    $shareB = Join-Path $TestDrive 'b'
    $null = New-TestFile (Join-Path $shareA 'top.txt') -Length 3
    $null = New-TestFile (Join-Path $shareA 'docs/guide.md') -Length 1000
    $null = New-TestFile (Join-Path $shareA 'docs/deep/naïve café ü.bin') -Length 1MB
    $null = New-TestFile (Join-Path $shareA 'docs/.notes.txt.partial') -Length 5
    $null = New-TestFile (Join-Path $shareB 'only-b.csv') -Length 42
    $stamp = [DateTime]::new(2021, 3, 4, 5, 6, 7, [DateTimeKind]::Utc)
    [IO.File]::SetLastWriteTimeUtc((Join-Path $shareA 'top.txt'), $stamp)
    $jobA = Start-FileShareServer -Port 0 -Path $shareA
    $jobB = Start-FileShareServer -Port 0 -Path $shareB
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'Get-RemoteFileList' {
    It 'lists the files at the top of the share, with length, UTC time, computer and port' {
        $files = @(Get-RemoteFileList -Port $jobA.Port)

        $files.Name | Should -Be 'top.txt'
        $files[0] | Should -BeOfType FileShare.PowerShell.RemoteFileInfo
        $files[0].Length | Should -Be 3
        $files[0].LastWriteTimeUtc | Should -Be $stamp
        $files[0].LastWriteTimeUtc.Kind | Should -Be Utc
        $files[0].LastWriteTime | Should -Be $stamp.ToLocalTime()
        $files[0].LastWriteTime.Kind | Should -Be Local
        $files[0].ComputerName | Should -Be localhost
        $files[0].Port | Should -Be $jobA.Port
    }

    It 'gives LastWriteTime in local time, comparable with the downloaded file and Get-Date, outside UTC' {
        $child = Start-ChildPwsh -Environment @{ TZ = 'America/New_York' } -ArgumentList $jobA.Port, (Join-Path $TestDrive 'tz') -ScriptBlock {
            param($Port, $Destination)
            if ([TimeZoneInfo]::Local.BaseUtcOffset -eq [TimeSpan]::Zero) { throw "TZ=America/New_York did not take: local time is UTC, so this test proves nothing" }
            $listed = Get-RemoteFileList -Port $Port -Name top.txt
            $file = Get-RemoteFile top.txt -Port $Port -Destination $Destination -PassThru
            "same=$($listed.LastWriteTime -eq $file.LastWriteTime) utc=$($listed.LastWriteTimeUtc -eq $file.LastWriteTimeUtc) kind=$($listed.LastWriteTime.Kind)"
        }
        $result = $child | Wait-TestProcess -TimeoutSec 60
        $result.StdErr | Should -BeNullOrEmpty
        $result.ExitCode | Should -Be 0
        $result.StdOut.Trim() | Should -Be 'same=True utc=True kind=Local'
    }

    It 'lists sub-folders with -Recurse as /-separated names and never shows partial downloads' {
        $names = (Get-RemoteFileList -Port $jobA.Port -Recurse).Name | Sort-Object

        $names | Should -Be @('docs/deep/naïve café ü.bin', 'docs/guide.md', 'top.txt')
    }

    It 'lists one folder with -Path and filters names with -Name wildcards' {
        (Get-RemoteFileList -Port $jobA.Port -Path docs).Name | Should -Be 'docs/guide.md'
        (Get-RemoteFileList -Port $jobA.Port -Recurse -Name '*.BIN', 'top*').Name | Sort-Object |
            Should -Be @('docs/deep/naïve café ü.bin', 'top.txt')
    }

    It 'asks several servers at once, one object per file per server' {
        $files = Get-RemoteFileList -ComputerName localhost, 127.0.0.1 -Port $jobA.Port, $jobB.Port

        $files.Count | Should -Be 4
        ($files | Where-Object ComputerName -EQ '127.0.0.1' | Where-Object Port -EQ $jobB.Port).Name | Should -Be 'only-b.csv'
    }

    It 'reports an unreachable server as ServerUnreachable naming host:port, and still lists the others' {
        $dead = Get-FreePort

        $files = Get-RemoteFileList -Port $jobA.Port, $dead, $jobB.Port -ErrorVariable listErrors -ErrorAction SilentlyContinue

        $files.Name | Sort-Object | Should -Be @('only-b.csv', 'top.txt')
        $listErrors.Count | Should -Be 1
        $listErrors[0].FullyQualifiedErrorId | Should -BeLike 'ServerUnreachable,*'
        $listErrors[0].CategoryInfo.Category | Should -Be ConnectionError
        $listErrors[0].Exception.Message | Should -Match ([regex]::Escape("localhost:$dead"))
    }

    It 'refuses a -Path that leaves the share with RemotePathRefused' {
        $failure = { Get-RemoteFileList -Port $jobA.Port -Path '../..' -ErrorAction Stop } | Should -Throw -ErrorId 'RemotePathRefused,*' -PassThru
        $failure.CategoryInfo.Category | Should -Be PermissionDenied
    }

    It 'feeds Get-RemoteFile through the pipeline, binding Name, ComputerName and Port by property name' {
        $destination = Join-Path $TestDrive 'from-list'

        $downloaded = Get-RemoteFileList -Port $jobA.Port, $jobB.Port -Recurse | Get-RemoteFile -Destination $destination -PassThru

        $downloaded.Count | Should -Be 4
        $sources = 'a/top.txt', 'a/docs/guide.md', 'a/docs/deep/naïve café ü.bin', 'b/only-b.csv' | ForEach-Object { Join-Path $TestDrive $_ }
        $targets = 'top.txt', 'docs/guide.md', 'docs/deep/naïve café ü.bin', 'only-b.csv' | ForEach-Object { Join-Path $destination $_ }
        Get-Sha256 $targets | Should -Be (Get-Sha256 $sources)
        (Get-Item -LiteralPath $targets[0]).LastWriteTimeUtc | Should -Be $stamp
    }
}

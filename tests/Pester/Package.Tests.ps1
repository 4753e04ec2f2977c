BeforeAll {
    . $PSScriptRoot/common.ps1

    # The package is made from the module under test by the script build.ps1 Package runs (rebuilding here would
    # replace the assemblies this run has loaded).
    $builtModule = [IO.Path]::GetFullPath($env:FILESHARE_MODULE_PATH)
    $packages = Join-Path $TestDrive 'packages'
    $package = & ([IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../tools/New-ModulePackage.ps1'))) -ModulePath $builtModule -OutputPath $packages 6>$null
    $manifest = Import-PowerShellDataFile (Join-Path $builtModule 'FileShare.psd1')

    $share = Join-Path $TestDrive 'share'
    $payloadHash = New-TestFile (Join-Path $share 'payload.bin') -Length (3MB + 1) -Seed 42

    # A child pwsh whose user profile is a scratch folder: HOME and the XDG folders point into it, so the CurrentUser
    # scope (modules), the repository lists of PSResourceGet and PowerShellGet, NuGet's config and pwsh's caches all
    # live there and nothing of the real user is read or written. PSModulePath is not inherited.
    function Invoke-ScratchPwsh {
        param([Parameter(Mandatory)] [string] $ScratchHome, [Parameter(Mandatory)] [string] $Script, [string[]] $ArgumentList = @(), [double] $TimeoutSec = 60)
        foreach ($folder in '.local/share', '.config', '.cache') { $null = New-Item -ItemType Directory -Path (Join-Path $ScratchHome $folder) -Force }
        $path = Join-Path $global:FileShareTestTemp ("scratch-{0}.ps1" -f [guid]::NewGuid().ToString('n'))
        Set-Content -LiteralPath $path -Value $Script -Encoding utf8
        $pwsh = Get-PwshCommandLine
        $environment = @{
            HOME            = $ScratchHome
            XDG_DATA_HOME   = Join-Path $ScratchHome '.local/share'
            XDG_CONFIG_HOME = Join-Path $ScratchHome '.config'
            XDG_CACHE_HOME  = Join-Path $ScratchHome '.cache'
            PSModulePath    = $null
        }
        $child = Start-TestProcess -FilePath $pwsh[0] -Environment $environment -WorkingDirectory $ScratchHome `
            -ArgumentList (@($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $path) + $ArgumentList)
        $result = Wait-TestProcess $child -TimeoutSec $TimeoutSec
        if ($result.ExitCode -ne 0) { throw "The scratch pwsh failed ($($result.ExitCode)): $($result.StdErr) $($result.StdOut)" }
        # The report is the last line; warnings and the like may come before it.
        ($result.StdOut -split '\r?\n' | Where-Object { $_ } | Select-Object -Last 1) | ConvertFrom-Json
    }

    # Registers a local file repository on the package folder under a unique name, installs FileShare from it into the
    # CurrentUser scope, unregisters it, and reports where the module went. Refuses to run outside a scratch profile.
    $installScript = {
        param([string] $Tool, [string] $PackageFolder)
        $ErrorActionPreference = 'Stop'
        $scratch = [IO.Path]::GetFullPath($env:HOME)
        foreach ($folder in [Environment]::GetFolderPath('UserProfile'), [Environment]::GetFolderPath('LocalApplicationData')) {
            if (-not $folder -or -not $folder.StartsWith($scratch)) { throw "Not a scratch profile: '$folder' is outside HOME '$scratch'." }
        }
        $repository = 'FileShareTest' + [guid]::NewGuid().ToString('n')
        if ($Tool -eq 'Install-PSResource') {
            Register-PSResourceRepository -Name $repository -Uri $PackageFolder
            try { $location = (Install-PSResource FileShare -Repository $repository -TrustRepository -Scope CurrentUser -Quiet -PassThru).InstalledLocation }
            finally { Unregister-PSResourceRepository -Name $repository }
            $left = @(Get-PSResourceRepository | Where-Object Name -EQ $repository).Count
        }
        else {
            Register-PSRepository -Name $repository -SourceLocation $PackageFolder -InstallationPolicy Trusted
            try {
                Install-Module FileShare -Repository $repository -Scope CurrentUser
                $location = Split-Path (Get-InstalledModule FileShare).InstalledLocation | Split-Path
            }
            finally { Unregister-PSRepository -Name $repository }
            $left = @(Get-PSRepository -WarningAction Ignore | Where-Object Name -EQ $repository).Count
        }
        @{ Location = $location; RepositoriesLeft = $left } | ConvertTo-Json -Compress
    }.ToString()

    # A fresh pwsh that sees only the scratch module folder and PowerShell's own: imports FileShare by name, shares
    # a folder on a free port and downloads a file from it.
    $useScript = {
        param([string] $ModuleFolder, [string] $Share, [string] $Destination)
        $ErrorActionPreference = 'Stop'
        $env:PSModulePath = $ModuleFolder + [IO.Path]::PathSeparator + (Join-Path $PSHOME 'Modules')
        $available = @(Get-Module -ListAvailable FileShare)
        Import-Module FileShare
        $server = Start-FileShareServer -Port 0 -Path $Share
        try { $file = Get-RemoteFile -Name payload.bin -Port $server.Port -Destination $Destination -PassThru }
        finally { Stop-FileShareServer -All }
        $module = Get-Module FileShare
        @{
            Available  = @($available.ModuleBase)
            ModuleBase = $module.ModuleBase
            Version    = "$($module.Version)"
            Commands   = @($module.ExportedCommands.Keys | Sort-Object)
            Formats    = @($module.ExportedFormatFiles | Split-Path -Leaf)
            Examples   = @((Get-Help Start-FileShareServer).examples.example).Count
            Hash       = (Get-FileHash -LiteralPath $file.FullName -Algorithm SHA256).Hash
        } | ConvertTo-Json -Compress
    }.ToString()

    function Get-RelativeFiles([string] $Folder) {
        @(Get-ChildItem -LiteralPath $Folder -Recurse -File | ForEach-Object { [IO.Path]::GetRelativePath($Folder, $_.FullName).Replace('\', '/') } | Sort-Object)
    }
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'The module package' {
    It 'is named FileShare.VERSION.nupkg, with a nuspec from the manifest and every file of the built module' {
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $package.Name | Should -Be "FileShare.$($manifest.ModuleVersion).nupkg"
        $zip = [IO.Compression.ZipFile]::OpenRead($package.FullName)
        try {
            $entries = @($zip.Entries.FullName)
            $reader = [IO.StreamReader]::new($zip.GetEntry('FileShare.nuspec').Open())
            try { $metadata = ([xml]$reader.ReadToEnd()).package.metadata } finally { $reader.Dispose() }
        }
        finally { $zip.Dispose() }

        foreach ($file in Get-RelativeFiles $builtModule) { $entries | Should -Contain $file }
        $entries | Should -Contain '[Content_Types].xml'
        $entries | Should -Contain '_rels/.rels'
        $metadata.id | Should -Be 'FileShare'
        $metadata.version | Should -Be $manifest.ModuleVersion
        $metadata.description | Should -Be $manifest.Description
        $metadata.tags -split ' ' | Should -Contain 'PSModule'
    }

    It 'installs with <Tool> from a local file repository, and a fresh pwsh imports it by name and downloads a file' -ForEach @(
        @{ Tool = 'Install-PSResource' }
        @{ Tool = 'Install-Module' }
    ) {
        $scratchHome = Join-Path $TestDrive "home-$Tool"
        $modules = Join-Path $scratchHome '.local/share/powershell/Modules'

        $installed = Invoke-ScratchPwsh -ScratchHome $scratchHome -Script $installScript -ArgumentList $Tool, $packages

        $installed.Location | Should -Be $modules
        $installed.RepositoriesLeft | Should -Be 0
        $installedFolder = Join-Path $modules "FileShare/$($manifest.ModuleVersion)"
        # The installers add their own metadata file beside the module's.
        Get-RelativeFiles $installedFolder | Where-Object { $_ -ne 'PSGetModuleInfo.xml' } | Should -Be (Get-RelativeFiles $builtModule)

        $destination = Join-Path $TestDrive "dl-$Tool"
        $used = Invoke-ScratchPwsh -ScratchHome $scratchHome -Script $useScript -ArgumentList $modules, $share, $destination

        $used.Available | Should -Be @($installedFolder)
        $used.ModuleBase | Should -Be $installedFolder
        $used.Version | Should -Be $manifest.ModuleVersion
        $used.Commands | Should -Be @($manifest.CmdletsToExport | Sort-Object)
        $used.Formats | Should -Be @('FileShare.format.ps1xml')
        if (Test-Path (Join-Path $builtModule 'en-US')) { $used.Examples | Should -BeGreaterThan 0 -Because 'the help comes with the package' }
        $used.Hash | Should -Be $payloadHash
    }
}

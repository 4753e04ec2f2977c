@{
    RootModule           = 'bin/FileShare.dll'
    ModuleVersion        = '{{ModuleVersion}}'
    GUID                 = '6f1d2c1e-8a3b-4c55-9f0e-2d7b5a9c4e61'
    Author               = 'FileShare contributors'
    CompanyName          = 'FileShare'
    Copyright            = '(c) FileShare contributors. MIT License.'
    Description          = 'Share folders over TCP from PowerShell background jobs and download from them in chunks, many files at once, safely.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('FileShare.format.ps1xml')
    CmdletsToExport      = @(
        'Start-FileShareServer'
        'Stop-FileShareServer'
        'Get-FileShareServer'
        'Get-RemoteFileList'
        'Get-RemoteFile'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('FileShare', 'FileTransfer', 'Server', 'TCP', 'Download')
            LicenseUri = 'https://opensource.org/licenses/MIT'
        }
    }
}

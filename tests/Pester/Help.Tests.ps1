BeforeDiscovery {
    # One test case per exported cmdlet, so a new cmdlet gets its own failing tests until it is documented.
    $manifest = Join-Path ([IO.Path]::GetFullPath($env:FILESHARE_MODULE_PATH)) 'FileShare.psd1'
    $cmdletCases = @((Import-PowerShellDataFile $manifest).CmdletsToExport | ForEach-Object { @{ Name = $_ } })
}

BeforeAll {
    . $PSScriptRoot/common.ps1

    # Get-Help caches the help it has read for the life of a session, and other test files import the module again
    # with -Force: read the built help from a fresh pwsh instead, as a user would see it.
    $child = Start-ChildPwsh -ScriptBlock {
        $common = [System.Management.Automation.Cmdlet]::CommonParameters
        $cmdlets = foreach ($command in Get-Command -Module FileShare -CommandType Cmdlet) {
            $help = Get-Help $command.Name -Full
            $described = @{}
            foreach ($parameter in @($help.parameters.parameter | Where-Object { $_ })) {
                $described[$parameter.name] = (@($parameter.description.Text) -join "`n").Trim()
            }
            @{
                Name          = $command.Name
                Synopsis      = "$($help.Synopsis)".Trim()
                Description   = (@($help.description.Text) -join "`n").Trim()
                Examples      = @(foreach ($example in @($help.examples.example | Where-Object { $_ })) { @{ Title = "$($example.title)"; Code = "$($example.code)".Trim() } })
                Parameters    = @(foreach ($name in $command.Parameters.Keys | Where-Object { $_ -notin $common }) { @{ Name = $name; Description = "$($described[$name])" } })
                SyntaxItems   = @($help.syntax.syntaxItem | Where-Object { $_ }).Count
                ParameterSets = $command.ParameterSets.Count
            }
        }
        # Every ErrorId the module derives from a failure kind; about_FileShare must explain each.
        $errorIds = foreach ($kind in [Enum]::GetValues([FileShare.FileShareErrorKind])) { [FileShare.PowerShell.ErrorRecords]::Classify($kind).Item1 }
        @{
            Cmdlets  = @($cmdlets)
            About    = Get-Help about_FileShare | Out-String -Width 200
            ErrorIds = @($errorIds)
        } | ConvertTo-Json -Depth 6 -Compress
    }
    $result = Wait-TestProcess $child -TimeoutSec 120
    if ($result.ExitCode -ne 0) { throw "Reading the help failed ($($result.ExitCode)): $($result.StdErr)" }
    $builtHelp = $result.StdOut | ConvertFrom-Json

    function Get-CmdletHelp([string] $Name) {
        $help = @($builtHelp.Cmdlets | Where-Object Name -EQ $Name)
        if ($help.Count -ne 1) { throw "Get-Command -Module FileShare does not list $Name." }
        $help[0]
    }

    $generator = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../tools/New-MamlHelp.ps1'))
    $helpSource = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../docs/help'))
    $assembly = Join-Path ([IO.Path]::GetFullPath($env:FILESHARE_MODULE_PATH)) 'bin/FileShare.dll'

    function Copy-HelpSource {
        <# A scratch copy of docs/help, optionally with one page's text changed by a regex; returns its folder. #>
        param([string] $Page, [string] $Pattern, [string] $Replacement = '')
        $copy = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        Copy-Item -LiteralPath $helpSource -Destination $copy -Recurse
        if ($Page) {
            $file = Join-Path $copy $Page
            $text = Get-Content -LiteralPath $file -Raw
            $changed = [regex]::Replace($text, $Pattern, $Replacement, 'Multiline, Singleline')
            if ($changed -eq $text) { throw "The pattern '$Pattern' changed nothing in $Page." }
            Set-Content -LiteralPath $file -Value $changed -NoNewline
        }
        $copy
    }
}

AfterAll {
    Stop-TestProcesses
}

Describe 'Get-Help for <Name>' -ForEach $cmdletCases {
    BeforeAll {
        $help = Get-CmdletHelp $Name
    }

    It 'has a synopsis written for it, not one generated from the syntax' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match "^$Name\s" -Because 'Get-Help makes up a synopsis from the syntax when it finds no help file'
    }

    It 'has a description' {
        $help.Description | Should -Not -BeNullOrEmpty
    }

    It 'has at least three examples, each with code' {
        @($help.Examples).Count | Should -BeGreaterOrEqual 3
        foreach ($example in $help.Examples) {
            $example.Code | Should -Not -BeNullOrEmpty -Because "example '$($example.Title)' needs code"
        }
    }

    It 'describes every parameter except the common ones' {
        $undocumented = @($help.Parameters | Where-Object { -not $_.Description.Trim() } | ForEach-Object { "-$($_.Name)" })
        $undocumented | Should -BeNullOrEmpty -Because "docs/help/$Name.md needs a '### -Name' section for each"
    }

    It 'shows one syntax line per parameter set' {
        $help.SyntaxItems | Should -Be $help.ParameterSets
    }
}

Describe 'Get-Help about_FileShare' {
    It 'returns the topic' {
        $builtHelp.About | Should -Match 'TOPIC\s+about_FileShare'
        $builtHelp.About | Should -Match 'SHORT DESCRIPTION'
    }

    It 'covers <_>' -ForEach @('SERVERS AND JOBS', 'PORTS AND FOLDERS', 'DOWNLOADING SAFELY', 'THE PROTOCOL', "THE ORIGINAL PROGRAM'S PROTOCOL", 'SECURITY', 'LIMITS', 'TROUBLESHOOTING') {
        $builtHelp.About | Should -Match "(?m)^$([regex]::Escape($_))\s*$"
    }

    It 'explains every ErrorId the module reports for a failure' {
        $troubleshooting = $builtHelp.About.Substring($builtHelp.About.IndexOf('TROUBLESHOOTING'))
        $missing = @($builtHelp.ErrorIds | Where-Object { $troubleshooting -notmatch "\b$_\b" })
        $missing | Should -BeNullOrEmpty -Because 'docs/help/about_FileShare.md lists each ErrorId under Troubleshooting'
    }
}

Describe 'tools/New-MamlHelp.ps1' {
    It 'writes the MAML and the about topic from docs/help' {
        $out = Join-Path $TestDrive 'complete'

        & $generator -SourcePath (Copy-HelpSource) -OutputPath $out -AssemblyPath $assembly

        $maml = [xml](Get-Content -LiteralPath (Join-Path $out 'en-US/FileShare.dll-Help.xml') -Raw)
        $namespaces = [Xml.XmlNamespaceManager]::new($maml.NameTable)
        $namespaces.AddNamespace('command', 'http://schemas.microsoft.com/maml/dev/command/2004/10')
        $names = @($maml.SelectNodes('//command:command/command:details/command:name', $namespaces).InnerText)
        $names | Sort-Object | Should -Be ((Import-PowerShellDataFile $global:FileShareManifest).CmdletsToExport | Sort-Object)
        Join-Path $out 'en-US/about_FileShare.help.txt' | Should -Exist
    }

    It 'fails naming a parameter without a description' {
        $source = Copy-HelpSource -Page 'Get-RemoteFileList.md' -Pattern '^### -TimeoutSec\r?\n.*?(?=^##)'

        { & $generator -SourcePath $source -OutputPath (Join-Path $TestDrive 'no-parameter') -AssemblyPath $assembly } |
            Should -Throw '*Get-RemoteFileList.md: parameter -TimeoutSec has no description*'
    }

    It 'fails when a cmdlet has fewer than three examples' {
        $source = Copy-HelpSource -Page 'Get-FileShareServer.md' -Pattern '^### Example 3:.*?(?=^## )'

        { & $generator -SourcePath $source -OutputPath (Join-Path $TestDrive 'few-examples') -AssemblyPath $assembly } |
            Should -Throw '*Get-FileShareServer.md: 2 example(s)*at least 3 are required*'
    }

    It 'fails when a cmdlet has no page' {
        $source = Copy-HelpSource
        Remove-Item -LiteralPath (Join-Path $source 'Stop-FileShareServer.md')

        { & $generator -SourcePath $source -OutputPath (Join-Path $TestDrive 'no-page') -AssemblyPath $assembly } |
            Should -Throw '*Stop-FileShareServer has no help page*'
    }
}

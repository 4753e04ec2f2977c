<#
.SYNOPSIS
    Turns the Markdown help in docs/help into the module's MAML help and about_ topics.
.DESCRIPTION
    Reads docs/help/<Verb-Noun>.md (one page per cmdlet) and docs/help/about_*.md, in the shape described in
    docs/help/README.md, and writes <OutputPath>/en-US/<assembly>-Help.xml (MAML, for Get-Help <cmdlet>) and
    <OutputPath>/en-US/about_*.help.txt (for Get-Help about_*).

    Text comes from the Markdown. Syntax, parameter types, mandatory, position, pipeline input, wildcards and
    aliases come from the built assembly's cmdlet metadata, and defaults from a new instance of each cmdlet unless
    the page gives a "Default value:" line. So the metadata cannot drift from the code.

    Throws, listing every problem at once, when a cmdlet has no page, a page has no synopsis or description,
    a public parameter (other than the common parameters) has no description, a page documents a parameter the
    cmdlet does not have, a cmdlet has fewer than three examples or an example has no code, or a page names no cmdlet
    of the assembly.

    The assembly is loaded in a new pwsh process (this script runs itself there), so a session that already holds
    an older FileShare.dll neither blocks the build nor feeds it stale metadata.
.EXAMPLE
    ./tools/New-MamlHelp.ps1 -SourcePath docs/help -OutputPath out/FileShare/0.1.0
#>
[CmdletBinding()]
param(
    # The folder holding <Verb-Noun>.md and about_*.md.
    [Parameter(Mandatory)] [string] $SourcePath,

    # The built module folder; help goes to its en-US subfolder.
    [Parameter(Mandatory)] [string] $OutputPath,

    # The assembly whose cmdlets are documented; default <OutputPath>/bin/FileShare.dll.
    [string] $AssemblyPath,

    # Internal: set when the script runs itself in a new process.
    [switch] $InChildProcess
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$SourcePath = [IO.Path]::GetFullPath($SourcePath, (Get-Location).ProviderPath)
$OutputPath = [IO.Path]::GetFullPath($OutputPath, (Get-Location).ProviderPath)
$AssemblyPath = if ($AssemblyPath) { [IO.Path]::GetFullPath($AssemblyPath, (Get-Location).ProviderPath) } else { Join-Path $OutputPath 'bin/FileShare.dll' }

if (-not $InChildProcess) {
    # The dotnet tool runs as 'dotnet pwsh.dll', an installed pwsh as itself.
    $pwsh = if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { @([Environment]::ProcessPath, (Join-Path $PSHOME 'pwsh.dll')) } else { @([Environment]::ProcessPath) }
    $output = & $pwsh[0] @($pwsh | Select-Object -Skip 1) -NoProfile -NonInteractive -File $PSCommandPath `
        -SourcePath $SourcePath -OutputPath $OutputPath -AssemblyPath $AssemblyPath -InChildProcess 2>&1
    if ($LASTEXITCODE -ne 0) { throw ($output -join [Environment]::NewLine) }
    $output | ForEach-Object { Write-Verbose "$_" }
    return
}

$nsMaml = 'http://schemas.microsoft.com/maml/2004/10'
$nsCommand = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$nsDev = 'http://schemas.microsoft.com/maml/dev/2004/10'

#region Markdown

function Split-Heading {
    <# Splits lines at headings of one level ('## ' or '### '), ignoring fenced code; returns an ordered map heading -> lines ('' holds the lines before the first). #>
    param([string[]] $Lines, [string] $Prefix)
    $sections = [ordered]@{ '' = [Collections.Generic.List[string]]::new() }
    $current = ''
    $inCode = $false
    foreach ($line in $Lines) {
        if ($line -match '^\s*```') { $inCode = -not $inCode }
        if (-not $inCode -and $line.StartsWith($Prefix)) {
            $current = $line.Substring($Prefix.Length).Trim()
            if ($sections.Contains($current)) { throw "Heading '$Prefix$current' appears twice." }
            $sections[$current] = [Collections.Generic.List[string]]::new()
        }
        else { $sections[$current].Add($line) }
    }
    $sections
}

function ConvertTo-Block {
    <# Markdown lines -> blocks: Paragraph (Text), Item (a list entry: Marker, Text), Code (Lines), Table (Rows of cells). #>
    param([string[]] $Lines)
    $i = 0
    while ($i -lt $Lines.Count) {
        $line = $Lines[$i]
        if ($line -match '^\s*$') { $i++ }
        elseif ($line -match '^\s*```') {
            $code = [Collections.Generic.List[string]]::new()
            for ($i++; $i -lt $Lines.Count -and $Lines[$i] -notmatch '^\s*```'; $i++) { $code.Add($Lines[$i]) }
            $i++
            [pscustomobject]@{ Kind = 'Code'; Lines = $code.ToArray() }
        }
        elseif ($line -match '^\s*\|') {
            $rows = for (; $i -lt $Lines.Count -and $Lines[$i] -match '^\s*\|'; $i++) {
                if ($Lines[$i] -notmatch '^[\s|:-]+$') { , @($Lines[$i].Trim().Trim('|').Split('|').Trim() | ForEach-Object { Format-Inline $_ }) }
            }
            [pscustomobject]@{ Kind = 'Table'; Rows = @($rows) }
        }
        else {
            $item = $line -match '^\s*([-*]|\d+\.)\s+'
            $marker = if ($item) { $Matches[1] -replace '\*', '-' } else { '' }
            $text = [Collections.Generic.List[string]]::new()
            $text.Add(($line.Trim() -replace '^([-*]|\d+\.)\s+', ''))
            for ($i++; $i -lt $Lines.Count -and $Lines[$i] -notmatch '^\s*($|```|\||([-*]|\d+\.)\s)'; $i++) { $text.Add($Lines[$i].Trim()) }
            [pscustomobject]@{ Kind = if ($item) { 'Item' } else { 'Paragraph' }; Marker = $marker; Text = Format-Inline ($text -join ' ') }
        }
    }
}

function Format-Inline([string] $Text) {
    <# Plain text for the console: [text](page.md) -> text, [text](https://...) -> text (https://...), no ` or ** marks. #>
    $Text = [regex]::Replace($Text, '\[([^\]]+)\]\(([^)]+)\)', { param($m) if ($m.Groups[2].Value -match '^https?://') { "$($m.Groups[1].Value) ($($m.Groups[2].Value))" } else { $m.Groups[1].Value } })
    $Text -replace '\*\*|`', ''
}

function Format-TextTable($Rows, [string] $Indent) {
    <# Columns padded to their widest cell, the header underlined with dashes. #>
    $widths = foreach ($column in 0..($Rows[0].Count - 1)) { ($Rows | ForEach-Object { $_[$column].Length } | Measure-Object -Maximum).Maximum }
    $lines = [Collections.Generic.List[object]]::new($Rows)
    $lines.Insert(1, @($widths | ForEach-Object { '-' * $_ }))
    foreach ($row in $lines) { $Indent + (@(for ($c = 0; $c -lt $row.Count; $c++) { $row[$c].PadRight($widths[$c]) }) -join '  ').TrimEnd() }
}

function Read-Page {
    <# A cmdlet page: Name (from '# '), and its '## ' sections as block lists, PARAMETERS/EXAMPLES/INPUTS/OUTPUTS split further at '### '. #>
    param([string] $Path)
    $lines = Get-Content -LiteralPath $Path
    try { $top = Split-Heading $lines '## ' }
    catch { throw [IO.InvalidDataException]::new("$(Split-Path $Path -Leaf): $($_.Exception.Message)") }
    $title = @($top[''] | Where-Object { $_ -match '^# ' })
    $page = @{ Name = if ($title) { $title[0].Substring(2).Trim() } else { '' }; File = Split-Path $Path -Leaf }
    foreach ($key in @($top.Keys) | Where-Object { $_ }) {
        $upper = $key.ToUpperInvariant()
        if ($upper -in 'PARAMETERS', 'EXAMPLES', 'INPUTS', 'OUTPUTS') {
            try { $sub = Split-Heading $top[$key] '### ' }
            catch { throw [IO.InvalidDataException]::new("$(Split-Path $Path -Leaf): $($_.Exception.Message)") }
            $page[$upper] = [ordered]@{}
            foreach ($name in @($sub.Keys) | Where-Object { $_ }) { $page[$upper][$name] = @(ConvertTo-Block $sub[$name]) }
        }
        else { $page[$upper] = @(ConvertTo-Block $top[$key]) }
    }
    $page
}

#endregion

#region Checks

function Get-PublicParameter($Command) {
    $common = [Management.Automation.Cmdlet]::CommonParameters
    @($Command.Parameters.Values | Where-Object { $_.Name -notin $common })
}

function Test-Page($Page, $Command) {
    <# Problems with one page, as sentences naming the file. #>
    $file = $Page.File
    if ($Page.Name -ne $Command.Name) { "${file}: the title must be '# $($Command.Name)'." }
    foreach ($section in 'SYNOPSIS', 'DESCRIPTION') {
        if (-not ($Page[$section] | Where-Object Kind -NE 'Code')) { "${file}: '## $section' is missing or empty." }
    }
    $documented = if ($Page['PARAMETERS']) { $Page['PARAMETERS'] } else { @{} }
    foreach ($parameter in Get-PublicParameter $Command) {
        $key = "-$($parameter.Name)"
        if (-not $documented.Contains($key) -or -not ($documented[$key] | Where-Object { $_.Kind -ne 'Code' -and $_.Text -notmatch '^Default value:' })) {
            "${file}: parameter -$($parameter.Name) has no description (add '### -$($parameter.Name)' with text under '## PARAMETERS')."
        }
    }
    foreach ($key in @($documented.Keys)) {
        if ($key.TrimStart('-') -notin (Get-PublicParameter $Command).Name) { "${file}: '### $key' documents a parameter $($Command.Name) does not have." }
    }
    $examples = if ($Page['EXAMPLES']) { $Page['EXAMPLES'] } else { @{} }
    if ($examples.Count -lt 3) { "${file}: $($examples.Count) example(s) under '## EXAMPLES'; at least 3 are required." }
    foreach ($title in @($examples.Keys)) {
        if (-not ($examples[$title] | Where-Object Kind -EQ 'Code')) { "${file}: '### $title' has no code block." }
    }
}

#endregion

#region MAML

function Write-Para($Writer, $Blocks) {
    <# One maml:para per block: list entries keep their marker, code and tables keep their lines. #>
    foreach ($block in $Blocks) {
        $text = switch ($block.Kind) {
            'Paragraph' { $block.Text }
            'Item' { "$($block.Marker) $($block.Text)" }
            # Get-Help trims the first line of a para, so code keeps only its own indentation beyond the common one.
            'Code' {
                $indent = ($block.Lines | Where-Object { $_.Trim() } | ForEach-Object { $_.Length - $_.TrimStart().Length } | Measure-Object -Minimum).Minimum
                ($block.Lines | ForEach-Object { if ($_.Length -ge $indent) { $_.Substring([int]$indent) } else { $_.TrimStart() } }) -join "`n"
            }
            'Table' { (Format-TextTable $block.Rows '') -join "`n" }
        }
        $Writer.WriteElementString('maml', 'para', $nsMaml, $text)
    }
}

function Write-Description($Writer, $Blocks) {
    $Writer.WriteStartElement('maml', 'description', $nsMaml)
    Write-Para $Writer $Blocks
    $Writer.WriteEndElement()
}

function Get-ParameterInfo($Parameter, $Blocks, $Instance, [string] $SetName) {
    <# What MAML says about a parameter: in one set when SetName is given, else across all its sets. #>
    $sets = @(if ($SetName) { $Parameter.ParameterSets[$SetName] } else { $Parameter.ParameterSets.Values })
    $positions = @($sets.Position | Where-Object { $_ -ge 0 })
    $byValue = @($sets | Where-Object ValueFromPipeline).Count -gt 0
    $byName = @($sets | Where-Object ValueFromPipelineByPropertyName).Count -gt 0
    # An optional value ([long?]) is shown as the type it takes, as Get-Help shows [long] for one.
    $type = [Nullable]::GetUnderlyingType($Parameter.ParameterType) ?? $Parameter.ParameterType
    $defaultLine = @($Blocks | Where-Object { $_.Kind -eq 'Paragraph' -and $_.Text -match '^Default value:\s*(.+)$' })
    $default = if ($defaultLine) { ($defaultLine[0].Text -replace '^Default value:\s*', '') }
    else {
        # Not every parameter is a property (-WhatIf and -Confirm are added by the engine).
        $property = $Instance.PSObject.Properties[$Parameter.Name]
        $value = if ($property) { $property.Value } elseif ($type -eq [Management.Automation.SwitchParameter]) { [Management.Automation.SwitchParameter]::new($false) }
        if ($null -eq $value -or "$value" -eq '' -or ($value -is [array] -and $value.Count -eq 0)) { 'None' }
        elseif ($value -is [Management.Automation.SwitchParameter]) { "$($value.IsPresent)" }
        else { @($value) -join ', ' }
    }
    [pscustomobject]@{
        Name        = $Parameter.Name
        Required    = @($sets | Where-Object { -not $_.IsMandatory }).Count -eq 0
        Position    = if ($positions.Count) { "$($positions[0])" } else { 'named' }
        Pipeline    = if ($byValue -and $byName) { 'True (ByValue, ByPropertyName)' } elseif ($byValue) { 'True (ByValue)' } elseif ($byName) { 'True (ByPropertyName)' } else { 'False' }
        Globbing    = @($Parameter.Attributes | Where-Object { $_ -is [Management.Automation.SupportsWildcardsAttribute] }).Count -gt 0
        Aliases     = if ($Parameter.Aliases.Count) { $Parameter.Aliases -join ', ' } else { 'none' }
        TypeName    = $type.Name
        IsSwitch    = $type -eq [Management.Automation.SwitchParameter]
        EnumValues  = if ($type.IsEnum) { [Enum]::GetNames($type) }
        Default     = $default
        Description = @($Blocks | Where-Object { $_ -notin $defaultLine })
    }
}

function Write-Parameter($Writer, $Info, [switch] $InSyntax) {
    $Writer.WriteStartElement('command', 'parameter', $nsCommand)
    $Writer.WriteAttributeString('required', "$($Info.Required)".ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', 'true')
    $Writer.WriteAttributeString('globbing', "$($Info.Globbing)".ToLowerInvariant())
    $Writer.WriteAttributeString('pipelineInput', $Info.Pipeline)
    $Writer.WriteAttributeString('position', $Info.Position)
    $Writer.WriteAttributeString('aliases', $Info.Aliases)
    $Writer.WriteElementString('maml', 'name', $nsMaml, $Info.Name)
    Write-Description $Writer $Info.Description
    if ($InSyntax -and $Info.EnumValues) {
        $Writer.WriteStartElement('command', 'parameterValueGroup', $nsCommand)
        foreach ($value in $Info.EnumValues) { Write-ParameterValue $Writer $value }
        $Writer.WriteEndElement()
    }
    elseif (-not ($InSyntax -and $Info.IsSwitch)) { Write-ParameterValue $Writer $Info.TypeName -Required (-not $Info.IsSwitch) }
    $Writer.WriteStartElement('dev', 'type', $nsDev)
    $Writer.WriteElementString('maml', 'name', $nsMaml, $Info.TypeName)
    $Writer.WriteEndElement()
    $Writer.WriteElementString('dev', 'defaultValue', $nsDev, $Info.Default)
    $Writer.WriteEndElement()
}

function Write-ParameterValue($Writer, [string] $Value, [bool] $Required = $false) {
    $Writer.WriteStartElement('command', 'parameterValue', $nsCommand)
    $Writer.WriteAttributeString('required', "$Required".ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', 'false')
    $Writer.WriteString($Value)
    $Writer.WriteEndElement()
}

function Write-TypeList($Writer, [string] $ListName, [string] $ItemName, $Types) {
    $Writer.WriteStartElement('command', $ListName, $nsCommand)
    foreach ($type in @(if ($Types) { $Types.Keys })) {
        $Writer.WriteStartElement('command', $ItemName, $nsCommand)
        $Writer.WriteStartElement('dev', 'type', $nsDev)
        $Writer.WriteElementString('maml', 'name', $nsMaml, $type)
        $Writer.WriteEndElement()
        Write-Description $Writer $Types[$type]
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()
}

function Write-Command($Writer, $Page, $Command) {
    $instance = [Activator]::CreateInstance($Command.ImplementingType)
    $parameterBlocks = $Page['PARAMETERS']
    $Writer.WriteStartElement('command', 'command', $nsCommand)
    $Writer.WriteAttributeString('xmlns', 'maml', $null, $nsMaml)
    $Writer.WriteAttributeString('xmlns', 'dev', $null, $nsDev)

    $Writer.WriteStartElement('command', 'details', $nsCommand)
    $Writer.WriteElementString('command', 'name', $nsCommand, $Command.Name)
    $Writer.WriteElementString('command', 'verb', $nsCommand, $Command.Verb)
    $Writer.WriteElementString('command', 'noun', $nsCommand, $Command.Noun)
    Write-Description $Writer $Page['SYNOPSIS']
    $Writer.WriteEndElement()
    Write-Description $Writer $Page['DESCRIPTION']

    # One syntax line per parameter set, default set first: positional parameters in order, then mandatory, then the rest.
    $Writer.WriteStartElement('command', 'syntax', $nsCommand)
    foreach ($set in $Command.ParameterSets | Sort-Object { -not $_.IsDefault }) {
        $Writer.WriteStartElement('command', 'syntaxItem', $nsCommand)
        $Writer.WriteElementString('maml', 'name', $nsMaml, $Command.Name)
        $inSet = @($set.Parameters | Where-Object { $_.Name -notin [Management.Automation.Cmdlet]::CommonParameters })
        $ordered = @($inSet | Where-Object Position -GE 0 | Sort-Object Position) + @($inSet | Where-Object { $_.Position -lt 0 -and $_.IsMandatory }) + @($inSet | Where-Object { $_.Position -lt 0 -and -not $_.IsMandatory })
        foreach ($parameter in $ordered) {
            $setName = if ($Command.Parameters[$parameter.Name].ParameterSets.ContainsKey($set.Name)) { $set.Name } else { '__AllParameterSets' }
            Write-Parameter $Writer (Get-ParameterInfo $Command.Parameters[$parameter.Name] $parameterBlocks["-$($parameter.Name)"] $instance $setName) -InSyntax
        }
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'parameters', $nsCommand)
    foreach ($key in @($parameterBlocks.Keys)) {
        Write-Parameter $Writer (Get-ParameterInfo $Command.Parameters[$key.TrimStart('-')] $parameterBlocks[$key] $instance)
    }
    $Writer.WriteEndElement()

    Write-TypeList $Writer 'inputTypes' 'inputType' $Page['INPUTS']
    Write-TypeList $Writer 'returnValues' 'returnValue' $Page['OUTPUTS']

    if ($Page['NOTES']) {
        $Writer.WriteStartElement('maml', 'alertSet', $nsMaml)
        $Writer.WriteStartElement('maml', 'alert', $nsMaml)
        Write-Para $Writer $Page['NOTES']
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }

    # An example is its first code block, then everything else as remarks.
    $Writer.WriteStartElement('command', 'examples', $nsCommand)
    foreach ($title in @($Page['EXAMPLES'].Keys)) {
        $blocks = $Page['EXAMPLES'][$title]
        $code = @($blocks | Where-Object Kind -EQ 'Code')[0]
        $Writer.WriteStartElement('command', 'example', $nsCommand)
        $Writer.WriteElementString('maml', 'title', $nsMaml, "---------- $title ----------")
        $Writer.WriteElementString('dev', 'code', $nsDev, ($code.Lines -join "`n"))
        $Writer.WriteStartElement('dev', 'remarks', $nsDev)
        Write-Para $Writer @($blocks | Where-Object { -not [object]::ReferenceEquals($_, $code) })
        $Writer.WriteElementString('maml', 'para', $nsMaml, '')  # a blank line before the next example
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'relatedLinks', $nsCommand)
    foreach ($link in @($Page['RELATED LINKS'] | Where-Object { $_ })) {
        $text = $link.Text -replace '\s*\(https?://[^)]+\)$', ''
        $uri = if ($link.Text -match '\((https?://[^)]+)\)$') { $Matches[1] } else { '' }
        $Writer.WriteStartElement('maml', 'navigationLink', $nsMaml)
        $Writer.WriteElementString('maml', 'linkText', $nsMaml, $text)
        $Writer.WriteElementString('maml', 'uri', $nsMaml, $uri)
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteEndElement()
    if ($instance -is [IDisposable]) { $instance.Dispose() }
}

#endregion

#region about_ topics

function Format-Wrapped([string] $Text, [string] $Indent, [string] $Hanging = $Indent, [int] $Width = 80) {
    $line = $Indent
    $empty = $true
    foreach ($word in $Text -split '\s+' | Where-Object { $_ }) {
        if (-not $empty -and $line.Length + 1 + $word.Length -gt $Width) { $line; $line = $Hanging; $empty = $true }
        $line += $(if ($empty) { '' } else { ' ' }) + $word
        $empty = $false
    }
    if (-not $empty) { $line }
}

function ConvertTo-AboutText {
    <# '# about_X' -> TOPIC, '## Short description' etc. -> upper-case headings, '### ' -> indented upper-case; body indented 4, wrapped at 80. #>
    param([string[]] $Lines)
    $out = [Collections.Generic.List[string]]::new()
    $body = [Collections.Generic.List[string]]::new()
    $flush = {
        $blocks = @(ConvertTo-Block $body)
        for ($b = 0; $b -lt $blocks.Count; $b++) {
            $block = $blocks[$b]
            switch ($block.Kind) {
                'Paragraph' { Format-Wrapped $block.Text '    ' | ForEach-Object { $out.Add($_) } }
                'Item' { Format-Wrapped $block.Text "    $($block.Marker) " (' ' * (5 + $block.Marker.Length)) | ForEach-Object { $out.Add($_) } }
                'Code' { $block.Lines | ForEach-Object { $out.Add("        $_".TrimEnd()) } }
                'Table' { Format-TextTable $block.Rows '    ' | ForEach-Object { $out.Add($_) } }
            }
            # List entries stay together; every other block is followed by a blank line.
            if (-not ($block.Kind -eq 'Item' -and $b + 1 -lt $blocks.Count -and $blocks[$b + 1].Kind -eq 'Item')) { $out.Add('') }
        }
        $body.Clear()
    }
    $inCode = $false
    foreach ($line in $Lines) {
        if ($line -match '^\s*```') { $inCode = -not $inCode }
        if (-not $inCode -and $line -match '^(#{1,3}) (.+)$') {
            . $flush
            switch ($Matches[1].Length) {
                1 { $out.Add('TOPIC'); $out.Add("    $($Matches[2].Trim())"); $out.Add('') }
                2 { $out.Add($Matches[2].Trim().ToUpperInvariant()) }
                3 { $out.Add('  ' + $Matches[2].Trim().ToUpperInvariant()) }
            }
        }
        else { $body.Add($line) }
    }
    . $flush
    ($out -join [Environment]::NewLine).TrimEnd() + [Environment]::NewLine
}

#endregion

# Runs in the child process: the parent shows what is written to stderr here.
try {
    if (-not (Test-Path -LiteralPath $AssemblyPath)) { throw "No assembly at '$AssemblyPath'; build it first." }
    $module = Import-Module $AssemblyPath -PassThru -Force
    $commands = @($module.ExportedCmdlets.Values | Sort-Object Name)

    $problems = [Collections.Generic.List[string]]::new()
    $pages = @{}
    foreach ($command in $commands) {
        $file = Join-Path $SourcePath "$($command.Name).md"
        if (-not (Test-Path -LiteralPath $file)) { $problems.Add("$($command.Name) has no help page: write $file."); continue }
        $pages[$command.Name] = Read-Page $file
        foreach ($problem in Test-Page $pages[$command.Name] $command) { $problems.Add($problem) }
    }
    foreach ($file in Get-ChildItem -LiteralPath $SourcePath -Filter '*-*.md') {
        if ($file.BaseName -notin $commands.Name) { $problems.Add("$($file.Name) documents '$($file.BaseName)', which $(Split-Path $AssemblyPath -Leaf) does not export.") }
    }
    $abouts = @(Get-ChildItem -LiteralPath $SourcePath -Filter 'about_*.md')
    foreach ($about in $abouts) {
        if (-not (Select-String -LiteralPath $about.FullName -Pattern '^## Short description' -Quiet)) { $problems.Add("$($about.Name): '## Short description' is missing.") }
    }
    if ($problems.Count) {
        throw [IO.InvalidDataException]::new("The help in '$SourcePath' is incomplete ($($problems.Count) problem(s)):`n  - " + ($problems -join "`n  - "))
    }

    $culture = New-Item -ItemType Directory -Path (Join-Path $OutputPath 'en-US') -Force
    $maml = Join-Path $culture "$(Split-Path $AssemblyPath -Leaf)-Help.xml"
    $settings = [Xml.XmlWriterSettings]@{ Indent = $true; Encoding = [Text.UTF8Encoding]::new($false) }
    # Written beside and moved into place, so a failure leaves no half-written help behind.
    $writer = [Xml.XmlWriter]::Create("$maml.tmp", $settings)
    try {
        $writer.WriteStartDocument()
        $writer.WriteStartElement('helpItems', 'http://msh')
        $writer.WriteAttributeString('schema', 'maml')
        foreach ($command in $commands) { Write-Command $writer $pages[$command.Name] $command }
        $writer.WriteEndElement()
        $writer.WriteEndDocument()
        $writer.Dispose()
        Move-Item -LiteralPath "$maml.tmp" -Destination $maml -Force
    }
    finally {
        $writer.Dispose()
        Remove-Item -LiteralPath "$maml.tmp" -ErrorAction Ignore
    }

    foreach ($about in $abouts) {
        $text = ConvertTo-AboutText (Get-Content -LiteralPath $about.FullName)
        [IO.File]::WriteAllText((Join-Path $culture "$($about.BaseName).help.txt"), $text, [Text.UTF8Encoding]::new($false))
    }
    "Wrote help for $($commands.Count) cmdlet(s) and $($abouts.Count) about topic(s) to $culture."
}
catch {
    # A list of problems speaks for itself; anything else is a bug here and needs its location.
    $text = if ($_.Exception -is [IO.InvalidDataException]) { $_.Exception.Message } else { "$($_.Exception.Message)`n$($_.ScriptStackTrace)" }
    [Console]::Error.WriteLine($text)
    exit 1
}

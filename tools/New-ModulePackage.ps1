<#
.SYNOPSIS
    Packs a built module folder into <Name>.<Version>.nupkg for Install-PSResource and Install-Module.
.DESCRIPTION
    Validates the manifest (Test-ModuleManifest, plus the root module and every file it names must exist), then lets
    PSResourceGet write the package: Compress-PSResource where it exists (PSResourceGet 1.1+, bundled with
    PowerShell 7.6), else Publish-PSResource to a temporary local file repository pointing at -OutputPath that is
    registered only for the call. Neither needs the network. The package holds every file of -ModulePath (the
    build copies an explicit list there); the script checks that it does and that its nuspec carries the manifest's
    name and version, and returns the .nupkg file. An older package of the same version in -OutputPath is replaced.
.EXAMPLE
    ./tools/New-ModulePackage.ps1 -ModulePath out/FileShare/0.1.0 -OutputPath out/packages

    Then, to install it: Register-PSResourceRepository -Name Local -Uri out/packages -Trusted;
    Install-PSResource FileShare -Repository Local
#>
[CmdletBinding()]
[OutputType([IO.FileInfo])]
param(
    # The built module folder, holding exactly one manifest (e.g. out/FileShare/0.1.0).
    [Parameter(Mandatory)] [string] $ModulePath,

    # Where the .nupkg goes; created if missing. Also usable as a local repository's -Uri.
    [Parameter(Mandatory)] [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ModulePath = [IO.Path]::GetFullPath($ModulePath, (Get-Location).ProviderPath)
$OutputPath = [IO.Path]::GetFullPath($OutputPath, (Get-Location).ProviderPath)

$manifests = @(Get-ChildItem -LiteralPath $ModulePath -Filter '*.psd1' -File)
if ($manifests.Count -ne 1) { throw "Expected one module manifest in '$ModulePath', found $($manifests.Count)." }
$manifestPath = $manifests[0].FullName
$name = $manifests[0].BaseName

$data = Import-PowerShellDataFile -LiteralPath $manifestPath
if ("$($data['ModuleVersion'])" -match '[{}]') { throw "The manifest's version '$($data.ModuleVersion)' was not stamped; package the built module (out/), not module/." }
# Test-ModuleManifest checks syntax, keys and the files the manifest lists; the root module and the export lists are checked below too.
$module = Test-ModuleManifest -Path $manifestPath -ErrorAction Stop
$version = $module.Version.ToString()
$folder = Split-Path $ModulePath -Leaf
if ($folder -match '^\d+(\.\d+){1,3}$' -and $folder -ne $version) {
    throw "Folder '$folder' and manifest version '$version' differ."
}
$needed = @($data['RootModule']) + @($data['FormatsToProcess']) + @($data['TypesToProcess']) + @($data['RequiredAssemblies']) + @($data['FileList'])
foreach ($relative in $needed | Where-Object { $_ }) {
    if (-not (Test-Path -LiteralPath (Join-Path $ModulePath $relative) -PathType Leaf)) {
        throw "The manifest names '$relative', which is not in '$ModulePath'."
    }
}
foreach ($key in 'CmdletsToExport', 'FunctionsToExport', 'AliasesToExport', 'VariablesToExport') {
    if (@($data[$key]) -match '[*?]') { throw "$key must list names, not wildcards (they slow discovery and hide the exports from galleries)." }
}

$null = New-Item -ItemType Directory -Path $OutputPath -Force
$package = Join-Path $OutputPath "$name.$version.nupkg"
if (Test-Path -LiteralPath $package) { Remove-Item -LiteralPath $package -Force }

if (Get-Command Compress-PSResource -ErrorAction Ignore) {
    Compress-PSResource -Path $ModulePath -DestinationPath $OutputPath
}
else {
    # PSResourceGet 1.0 (PowerShell 7.4/7.5) can only publish to a registered repository.
    $repository = "$name-package-$([guid]::NewGuid().ToString('n'))"
    Register-PSResourceRepository -Name $repository -Uri $OutputPath
    try { Publish-PSResource -Path $ModulePath -Repository $repository -SkipDependenciesCheck }
    finally { Unregister-PSResourceRepository -Name $repository }
}
if (-not (Test-Path -LiteralPath $package)) { throw "PSResourceGet did not write '$package'." }

# What went in: every file of the module folder, and a nuspec naming this module and version.
Add-Type -AssemblyName System.IO.Compression.FileSystem
$zip = [IO.Compression.ZipFile]::OpenRead($package)
try {
    $entries = @($zip.Entries.FullName)
    $nuspecEntry = $zip.GetEntry("$name.nuspec")
    if (-not $nuspecEntry) { throw "'$package' has no $name.nuspec." }
    $reader = [IO.StreamReader]::new($nuspecEntry.Open())
    try { $nuspec = [xml]$reader.ReadToEnd() } finally { $reader.Dispose() }
}
finally { $zip.Dispose() }
$missing = @(Get-ChildItem -LiteralPath $ModulePath -Recurse -File |
    ForEach-Object { [IO.Path]::GetRelativePath($ModulePath, $_.FullName).Replace('\', '/') } |
    Where-Object { $_ -notin $entries })
if ($missing) { throw "'$package' lacks: $($missing -join ', ')." }
if ($nuspec.package.metadata.id -ne $name -or $nuspec.package.metadata.version -ne $version) {
    throw "'$package' describes $($nuspec.package.metadata.id) $($nuspec.package.metadata.version), not $name $version."
}

Write-Host "Packed $name $version ($($entries.Count) entries) into $package"
Get-Item -LiteralPath $package

<#
.SYNOPSIS
    Packs the built module into a .nupkg that Install-PSResource installs. (Placeholder: filled in next.)
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $OutputPath
)
throw 'Packaging is not implemented yet.'

<#
.SYNOPSIS
    Turns the Markdown help in docs/help into the module's MAML help and about_ topics. (Placeholder: filled in next.)
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $SourcePath,
    [Parameter(Mandatory)] [string] $OutputPath
)

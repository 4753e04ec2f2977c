BeforeAll {
    . $PSScriptRoot/common.ps1

    $bin = Join-Path ([IO.Path]::GetFullPath($env:FILESHARE_MODULE_PATH)) 'bin'
    $assemblies = @(Get-ChildItem -LiteralPath $bin -Filter '*.dll' -File)

    # The PE machine of a ReadyToRun image: the architecture's, XOR-ed with a value for the OS it was compiled for.
    $architecture = @{ X64 = 0x8664; Arm64 = 0xAA64; X86 = 0x014C; Arm = 0x01C4 }[[Runtime.InteropServices.RuntimeInformation]::ProcessArchitecture.ToString()]
    $osSalt = if ($IsWindows) { 0 } elseif ($IsMacOS) { 0x4644 } else { 0x7B79 }
    $thisPlatform = $architecture -bxor $osSalt

    function Get-ImageFacts([string] $Path) {
        $stream = [IO.File]::OpenRead($Path)
        $pe = [Reflection.PortableExecutable.PEReader]::new($stream)
        try {
            $headers = $pe.PEHeaders
            $native = $headers.CorHeader.ManagedNativeHeaderDirectory
            $metadata = [Reflection.Metadata.PEReaderExtensions]::GetMetadataReader($pe)
            $runtime = $metadata.AssemblyReferences | ForEach-Object { $metadata.GetAssemblyReference($_) } |
                Where-Object { $metadata.GetString($_.Name) -eq 'System.Runtime' }
            [pscustomobject]@{
                Machine          = [int]$headers.CoffHeader.Machine
                # READYTORUN_HEADER.Signature, 'RTR', where the CLI header's managed native header points.
                Signature        = if ($native.Size -gt 0) { $pe.GetSectionData($native.RelativeVirtualAddress).GetReader().ReadUInt32() } else { 0 }
                SystemRuntime    = $runtime.Version
            }
        }
        finally { $pe.Dispose(); $stream.Dispose() }
    }

    # Run in a fresh pwsh before the module is imported: records which of the runtime's methods were jitted and which
    # ran precompiled code (R2RGetEntryPoint), by owning type and name.
    $listenerSource = @'
using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

public sealed class CodeOriginListener : EventListener
{
    public readonly ConcurrentQueue<string> Jitted = new();
    public readonly ConcurrentQueue<string> Precompiled = new();

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            const long Jit = 0x10, CompilationDiagnostic = 0x2000000000;
            EnableEvents(source, EventLevel.Verbose, (EventKeywords)(Jit | CompilationDiagnostic));
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        ConcurrentQueue<string> queue = e.EventName switch
        {
            "MethodJittingStarted_V1" => Jitted,
            "R2RGetEntryPoint" => Precompiled,
            _ => null,
        };
        if (queue is null || e.PayloadNames is null || e.Payload is null) return;
        queue.Enqueue(e.Payload[e.PayloadNames.IndexOf("MethodNamespace")] + "." + e.Payload[e.PayloadNames.IndexOf("MethodName")]);
    }
}
'@

    $share = Join-Path $TestDrive 'share'
    $smallHash = New-TestFile (Join-Path $share 'small.txt') -Length 1024
}

AfterAll {
    Remove-TestJobs
    Stop-TestProcesses
}

Describe 'The built assemblies (ReadyToRun)' {
    It 'every assembly in bin carries a ReadyToRun header for this platform and net8.0 IL' {
        $assemblies.Name | Should -Contain 'FileShare.dll'
        $assemblies.Name | Should -Contain 'FileShare.Core.dll'
        foreach ($assembly in $assemblies) {
            $facts = Get-ImageFacts $assembly.FullName
            $facts.Signature | Should -Be 0x00525452 -Because "$($assembly.Name) should hold precompiled code"
            $facts.Machine | Should -Be $thisPlatform -Because "$($assembly.Name) should be compiled for this OS and architecture"
            $facts.SystemRuntime.Major | Should -Be 8 -Because "$($assembly.Name) should keep the net8.0 IL that PowerShell 7.4 loads"
        }
    }

    It 'a cold pwsh runs Get-RemoteFile on the precompiled code of both assemblies, not the JIT' {
        $job = Start-FileShareServer -Port 0 -Path $share -BindAddress 127.0.0.1
        $destination = Join-Path $TestDrive 'cold'
        $script = Join-Path $TestDrive 'cold.ps1'
        @"
`$ErrorActionPreference = 'Stop'
Add-Type -TypeDefinition @'
$listenerSource
'@
`$listener = [CodeOriginListener]::new()
Import-Module '$($global:FileShareManifest.Replace("'", "''"))'
Get-RemoteFile small.txt -ComputerName 127.0.0.1 -Port $($job.Port) -Destination '$($destination.Replace("'", "''"))'
`$listener.Dispose()
@{ Jitted = @(`$listener.Jitted -like 'FileShare.*'); Precompiled = @(`$listener.Precompiled -like 'FileShare.*') } | ConvertTo-Json -Compress
"@ | Set-Content -LiteralPath $script -Encoding utf8
        $pwsh = Get-PwshCommandLine

        $result = Start-TestProcess -FilePath $pwsh[0] -ArgumentList (@($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $script)) |
            Wait-TestProcess -TimeoutSec 120

        $result.ExitCode | Should -Be 0 -Because $result.StdErr
        Get-Sha256 (Join-Path $destination 'small.txt') | Should -Be $smallHash
        $origin = ($result.StdOut -split '\r?\n' | Where-Object { $_ } | Select-Object -Last 1) | ConvertFrom-Json
        # Each runs once per download, so tiering never recompiles it: jitted here means its precompiled code was
        # missing or rejected by this runtime.
        $once = @(
            'FileShare.PowerShell.Commands.GetRemoteFileCommand.BeginProcessing'
            'FileShare.PowerShell.Commands.GetRemoteFileCommand.EndProcessing'
            'FileShare.Client.FileShareClientOptions..ctor'
            'FileShare.Client.ConnectionPool..ctor'
            'FileShare.Client.DownloadBatch.RunAsync'
        )
        foreach ($method in $once) {
            $origin.Precompiled | Should -Contain $method
            $origin.Jitted | Should -Not -Contain $method
        }
    }
}

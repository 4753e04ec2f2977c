Import-Module FileShare
$r = Get-RemoteFile grow.log -Port 21000 -Destination /tmp/breaker/dst1 -PassThru -Force -Verbose 4>&1
$r | ForEach-Object { "$_" }

using FileShare.Client;

namespace FileShare.PowerShell;

/// <summary>The verbose line Get-RemoteFile writes for each file: what arrived, from where, how fast, verified or skipped.</summary>
internal static class DownloadMessages
{
    public static string Describe(DownloadResult result)
    {
        if (result.Skipped)
        {
            return $"Skipped '{result.Path}': it already has the SHA-256 of the file on {result.Endpoint} ({result.Sha256}). Use -Force to download it anyway.";
        }

        double seconds = Math.Max(result.Duration.TotalSeconds, 1e-6);
        long fetched = result.Length - result.BytesResumed;
        string sources = result.Sources.Count > 1 ? " from " + string.Join(", ", result.Sources.Select(s => $"{s.Endpoint} ({Units.Bytes(s.Bytes)})")) : $" from {result.Endpoint}";
        string resumed = result.BytesResumed > 0 ? $", resumed: {Units.Bytes(result.BytesResumed)} were already here" : "";
        string verified = result.Sha256 is null ? ", not verified" : $", SHA-256 {result.Sha256} verified";
        return $"Downloaded '{result.Path}' ({result.Length:N0} bytes){sources} in {seconds:0.###} s ({Units.Bytes((long)(fetched / seconds))}/s, {result.Protocol} protocol{verified}{resumed}).";
    }
}

// HttpClient peer for the benchmark: what a .NET program (or a pwsh script calling .NET) does to fetch files over
// HTTP: one shared client, response streamed to the file with a 1 MiB buffer, many downloads awaited together.
using System;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;

public static class BenchHttp
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { MaxConnectionsPerServer = 1024 })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public static async Task DownloadAsync(string url, string path)
    {
        using HttpResponseMessage response = await Client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        await using Stream body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        await using FileStream file = new(path, FileMode.Create, FileAccess.Write, System.IO.FileShare.None, 1, FileOptions.Asynchronous);
        await body.CopyToAsync(file, 1 << 20).ConfigureAwait(false);
    }

    /// <summary>Downloads urls[i] to paths[i], at most <paramref name="parallel"/> at a time.</summary>
    public static void DownloadAll(string[] urls, string[] paths, int parallel)
    {
        Parallel.ForEachAsync(Enumerable.Range(0, urls.Length), new ParallelOptions { MaxDegreeOfParallelism = parallel },
            async (i, _) => await DownloadAsync(urls[i], paths[i]).ConfigureAwait(false)).GetAwaiter().GetResult();
    }
}

using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Support;

namespace FileShare.Tests.Server;

/// <summary>
/// Requests crafted to reach past the shared folder, sent as raw wire bytes to a live server: each is refused or
/// names a file that does not exist, and no byte, length or hash of a file outside the share ever comes back.
/// </summary>
public sealed class ConfinementTests : ServerTestBase
{
    private const string Secret = "TOP-SECRET outside the share";
    private readonly string _outside;
    private readonly string _secretPath;

    public ConfinementTests()
    {
        _outside = Temp.Create("outside");
        _secretPath = Path.Join(_outside, "secret.txt");
        File.WriteAllText(_secretPath, Secret);
        Directory.CreateDirectory(Share("sub"));
        File.WriteAllText(Share("sub/inside.txt"), "inside");
        File.WriteAllText(Share("café.txt"), "nfc");
    }

    public static TheoryData<string, StatusCode> Tricks => new()
    {
        { "../outside/secret.txt", StatusCode.PathRefused },
        { "..", StatusCode.PathRefused },
        { "sub/../../outside/secret.txt", StatusCode.PathRefused },
        { "sub/./../../outside/secret.txt", StatusCode.PathRefused },
        { "/etc/passwd", StatusCode.PathRefused },
        { "//server/share/secret.txt", StatusCode.PathRefused },
        { "\\\\server\\share\\secret.txt", StatusCode.PathRefused },
        { "..\\outside\\secret.txt", StatusCode.PathRefused },
        { "sub\\..\\..\\outside\\secret.txt", StatusCode.PathRefused },
        { "C:/Windows/win.ini", StatusCode.PathRefused },
        { "sub/inside.txt\0../../outside/secret.txt", StatusCode.PathRefused },
        { "sub//inside.txt", StatusCode.PathRefused },
        // Literal names: the server never decodes, trims or normalises, so these name files that do not exist.
        { "%2e%2e/outside/secret.txt", StatusCode.NotFound },
        { "%2e%2e%2foutside%2fsecret.txt", StatusCode.NotFound },
        { "..../outside/secret.txt", StatusCode.NotFound },
        { "\uFF0E\uFF0E/outside/secret.txt", StatusCode.NotFound },
        { "\u2025/outside/secret.txt", StatusCode.NotFound },
        { "..\u2215outside\u2215secret.txt", StatusCode.NotFound },
        { "..\uFF0Foutside\uFF0Fsecret.txt", StatusCode.NotFound },
    };

    [Theory]
    [MemberData(nameof(Tricks))]
    public async Task A_path_trick_is_refused_or_names_nothing_for_every_request_type(string name, StatusCode expected)
    {
        FileShareServer server = StartServer();
        using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);

        foreach ((FrameType type, byte[] body) in RequestsFor(name))
        {
            Frame reply = await RequestAsync(peer, type, body);
            Assert.Equal(expected, StatusOf(reply));
            Assert.DoesNotContain(Secret, Encoding.UTF8.GetString(reply.Body.Span));
        }
    }

    [Theory]
    [InlineData(new byte[] { 0xC0, 0xAE, 0xC0, 0xAE, 0x2F })]
    [InlineData(new byte[] { 0xE0, 0x80, 0xAE, 0xE0, 0x80, 0xAE, 0x2F })]
    [InlineData(new byte[] { 0x2E, 0x2E, 0xC0, 0xAF })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80, 0x2F })]
    [InlineData(new byte[] { 0xFF, 0xFE, 0x2F })]
    [InlineData(new byte[] { 0x73, 0x75, 0x62, 0x80 })]
    public async Task Overlong_and_invalid_UTF8_is_a_bad_request_never_a_path(byte[] prefix)
    {
        FileShareServer server = StartServer();
        using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);
        byte[] name = [.. prefix, .. "outside/secret.txt"u8];
        byte[] body = new byte[4 + name.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(body, (uint)name.Length);
        name.CopyTo(body, 4);

        Frame reply = await RequestAsync(peer, FrameType.StatRequest, body);

        Assert.Equal(StatusCode.BadRequest, StatusOf(reply));
        Assert.Contains("UTF-8", Encoding.UTF8.GetString(reply.Body.Span));
    }

    [LinuxFact("Linux file names are bytes; macOS file systems fold some twins themselves.")]
    public async Task Unicode_twins_are_different_names_the_server_never_normalises()
    {
        FileShareServer server = StartServer();
        using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);

        Frame composed = await RequestAsync(peer, FrameType.StatRequest, RawPeer.PathBody("caf\u00E9.txt"));
        Frame decomposed = await RequestAsync(peer, FrameType.StatRequest, RawPeer.PathBody("cafe\u0301.txt"));

        Assert.Equal(StatusCode.Ok, StatusOf(composed));
        Assert.Equal(StatusCode.NotFound, StatusOf(decomposed));
    }

    [LinuxFact("the check after opening reads /proc/self/fd, which only Linux has")]
    public async Task A_folder_swapped_for_a_symlink_between_check_and_open_never_leaks_a_byte_from_outside()
    {
        byte[] insideBytes = Enumerable.Repeat((byte)0x11, 16_000).ToArray();
        byte[] outsideBytes = Enumerable.Repeat((byte)0xEE, 20_000).ToArray();
        Directory.CreateDirectory(Share("dir"));
        File.WriteAllBytes(Share("dir/f"), insideBytes);
        Directory.CreateDirectory(Path.Join(_outside, "dir"));
        File.WriteAllBytes(Path.Join(_outside, "dir/f"), outsideBytes);
        File.CreateSymbolicLink(Share("parked"), Path.Join(_outside, "dir"));
        string outsideHash = Convert.ToHexString(SHA256.HashData(outsideBytes));
        FileShareServer server = StartServer();

        using var stopSwapping = new CancellationTokenSource();
        Task swapper = Task.Run(() => SwapUntil(Share("dir"), Share("parked"), Share("swap"), stopSwapping.Token));
        var served = new int[3];
        try
        {
            await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
            {
                using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);
                for (int i = 0; i < 300; i++)
                {
                    Frame read = await RequestAsync(peer, FrameType.ReadRequest, RawPeer.PathBody("dir/f", (0, -1)));
                    if (StatusOf(read) == StatusCode.Ok)
                    {
                        RangeReply range = Messages.ReadReadReply(read.Body.Span, out _, out _)!.Value;
                        byte[] data = new byte[range.DataLength];
                        await peer.Stream.ReadExactlyAsync(data);
                        Assert.Equal(insideBytes, data);
                        Interlocked.Increment(ref served[0]);
                    }

                    Frame stat = await RequestAsync(peer, FrameType.StatRequest, RawPeer.PathBody("dir/f"));
                    if (StatusOf(stat) == StatusCode.Ok)
                    {
                        Assert.Equal(insideBytes.Length, Messages.ReadStatReply(stat.Body.Span, out _, out _)!.Length);
                        Interlocked.Increment(ref served[1]);
                    }

                    Frame hash = await RequestAsync(peer, FrameType.HashRequest, RawPeer.PathBody("dir/f"));
                    if (StatusOf(hash) == StatusCode.Ok)
                    {
                        Assert.NotEqual(outsideHash, Convert.ToHexString(Messages.ReadHashReply(hash.Body.Span, out _, out _)!.Sha256));
                        Interlocked.Increment(ref served[2]);
                    }
                }
            })));
        }
        finally
        {
            stopSwapping.Cancel();
            await swapper;
        }

        Assert.All(served, count => Assert.True(count > 0, "some requests found the real folder in place"));
    }

    [LinuxFact("link(2) through P/Invoke")]
    public async Task A_hard_link_is_the_file_itself_and_is_served_as_documented()
    {
        Assert.Equal(0, link(_secretPath, Share("linked.txt")));
        FileShareServer server = StartServer();
        using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);

        Frame read = await RequestAsync(peer, FrameType.ReadRequest, RawPeer.PathBody("linked.txt", (0, -1)));

        // Nothing on a hard link says which folder it belongs to; whoever can write into the share decides (docs/limits.md).
        Assert.Equal(StatusCode.Ok, StatusOf(read));
        byte[] data = new byte[Messages.ReadReadReply(read.Body.Span, out _, out _)!.Value.DataLength];
        await peer.Stream.ReadExactlyAsync(data);
        Assert.Equal(Secret, Encoding.UTF8.GetString(data));
    }

    /// <summary>
    /// A plain name is opened in one call that follows no link, a name with a link on the way by the full lookup; both
    /// must answer alike. A link that stays inside serves its target (also past the size that travels in the reply, so
    /// through sendfile); no name, with a link or without, reaches a download's partial file.
    /// </summary>
    [Fact]
    public async Task Links_inside_the_share_serve_their_target_and_no_name_reaches_a_partial_file()
    {
        byte[] content = RandomNumberGenerator.GetBytes(40_000);
        File.WriteAllBytes(Share("sub/data.bin"), content);
        File.WriteAllBytes(Share("sub/.unfinished.bin.partial"), content);
        File.CreateSymbolicLink(Share("relative.bin"), "sub/data.bin");
        File.CreateSymbolicLink(Share("absolute.bin"), Share("sub/data.bin"));
        Directory.CreateSymbolicLink(Share("folder"), "sub");
        File.CreateSymbolicLink(Share("unfinished.bin"), "sub/.unfinished.bin.partial");
        FileShareServer server = StartServer();
        using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);

        foreach (string name in new[] { "sub/data.bin", "relative.bin", "absolute.bin", "folder/data.bin" })
        {
            Assert.Equal(content, await ReadWholeAsync(peer, name));
            Assert.Equal(content.Length, Messages.ReadStatReply((await RequestAsync(peer, FrameType.StatRequest, RawPeer.PathBody(name))).Body.Span, out _, out _)!.Length);
            Assert.Equal(SHA256.HashData(content), Messages.ReadHashReply((await RequestAsync(peer, FrameType.HashRequest, RawPeer.PathBody(name))).Body.Span, out _, out _)!.Sha256);
        }

        foreach (string name in new[] { "sub/.unfinished.bin.partial", "folder/.unfinished.bin.partial", "unfinished.bin" })
        {
            foreach ((FrameType type, byte[] body) in RequestsFor(name).Where(request => request.Item1 != FrameType.ListRequest))
            {
                Assert.Equal(StatusCode.NotFound, StatusOf(await RequestAsync(peer, type, body)));
            }
        }
    }

    /// <summary>The share is the folder at its path: renamed away and made anew while the server runs, the new one is served.</summary>
    [Fact]
    public async Task A_share_folder_replaced_while_serving_is_served_from_its_path()
    {
        File.WriteAllText(Share("same.txt"), "the first folder");
        FileShareServer server = StartServer();
        using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);
        Assert.Equal("the first folder", Encoding.UTF8.GetString(await ReadWholeAsync(peer, "same.txt")));

        Directory.Move(ShareRoot, ShareRoot + "-replaced");
        Directory.CreateDirectory(ShareRoot);
        File.WriteAllText(Share("same.txt"), "the folder made in its place");

        Assert.Equal("the folder made in its place", Encoding.UTF8.GetString(await ReadWholeAsync(peer, "same.txt")));
    }

    [Fact]
    public async Task No_request_of_any_type_creates_changes_or_deletes_a_file()
    {
        TestFiles.WriteRandom(Share("sub/data.bin"), 100_000);
        File.SetLastWriteTimeUtc(Share("sub/inside.txt"), new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc));
        string before = Snapshot(Temp.Path);
        FileShareServer server = StartServer();
        string[] names = ["", "sub", "sub/", "sub/data.bin", "sub/inside.txt", "new.txt", "sub/new", "sub/data.bin.partial", "sub/inside.txt/x", "café.txt"];

        // A few connections at a time: loopback is one address, and the per-address limit is not what this tests.
        await Parallel.ForEachAsync(Enumerable.Range(0, 256), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (type, _) =>
        {
            var random = new Random(type);
            using RawPeer peer = await RawPeer.HandshakeAsync(server.Port);
            var frames = new List<byte>();
            foreach (string name in names)
            {
                frames.AddRange(RawPeer.Frame((FrameType)type, 1, RawPeer.PathBody(name)));
                frames.AddRange(RawPeer.Frame((FrameType)type, 2, RawPeer.PathBody(name, (random.NextInt64(-5, 200_000), random.NextInt64(-5, 200_000)))));
                frames.AddRange(RawPeer.Frame((FrameType)type, 3, [(byte)random.Next(256), .. RawPeer.PathBody(name)]));
            }

            byte[] noise = new byte[random.Next(64)];
            random.NextBytes(noise);
            frames.AddRange(RawPeer.Frame((FrameType)type, 4, noise));
            await peer.SendAsync(frames.ToArray());
            peer.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
            await peer.DrainUntilClosedAsync(TimeSpan.FromSeconds(20));
        });
        foreach (string name in names)
        {
            using RawPeer seed = await RawPeer.ConnectAsync(server.Port);
            await seed.SendAsync(Encoding.UTF8.GetBytes(name.Length == 0 ? "x" : name));
            await seed.DrainUntilClosedAsync(TimeSpan.FromSeconds(20));
        }

        await Eventually.TrueAsync(() => server.Statistics.ActiveConnections == 0, "every connection is closed");
        Assert.Equal(before, Snapshot(Temp.Path));
    }

    /// <summary>Every entry under a folder with its size and last write time, one line each, in a stable order.</summary>
    private static string Snapshot(string folder) => string.Join('\n', new DirectoryInfo(folder)
        .EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
        .Select(e => $"{Path.GetRelativePath(folder, e.FullName)} {(e as FileInfo)?.Length} {e.LastWriteTimeUtc.Ticks} {e.LinkTarget}")
        .Order(StringComparer.Ordinal));

    private static IEnumerable<(FrameType, byte[])> RequestsFor(string name)
    {
        yield return (FrameType.StatRequest, RawPeer.PathBody(name));
        yield return (FrameType.HashRequest, RawPeer.PathBody(name));
        yield return (FrameType.ReadRequest, RawPeer.PathBody(name, (0, -1)));
        byte[] list = new byte[1 + SpanWriter.StringSize(name)];
        var writer = new SpanWriter(list);
        Messages.WriteListRequest(ref writer, name, ListOptions.Recursive);
        yield return (FrameType.ListRequest, list);
    }

    private static async Task<Frame> RequestAsync(RawPeer peer, FrameType type, byte[] body)
    {
        await peer.SendAsync(RawPeer.Frame(type, 7, body));
        Frame? reply = await peer.ReadFrameAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(reply);
        Assert.Equal(7u, reply.Value.RequestId);
        return reply.Value;
    }

    private static async Task<byte[]> ReadWholeAsync(RawPeer peer, string name)
    {
        Frame read = await RequestAsync(peer, FrameType.ReadRequest, RawPeer.PathBody(name, (0, -1)));
        Assert.Equal(StatusCode.Ok, StatusOf(read));
        RangeReply range = Messages.ReadReadReply(read.Body.Span, out _, out _)!.Value;
        byte[] data = new byte[range.DataLength];
        await peer.Stream.ReadExactlyAsync(data);
        return data;
    }

    private static StatusCode StatusOf(Frame reply) => (StatusCode)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(reply.Body.Span);

    /// <summary>Swaps a real folder and a symlink to outside under one name, over and over, with rename(2).</summary>
    private static void SwapUntil(string name, string other, string spare, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Rename(name, spare);
            Rename(other, name);
            Rename(spare, other);
        }
    }

    private static void Rename(string from, string to)
    {
        if (rename(from, to) != 0)
        {
            throw new IOException($"rename '{from}' -> '{to}' failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int rename(string oldPath, string newPath);

    [DllImport("libc", SetLastError = true)]
    private static extern int link(string existingPath, string newPath);
}

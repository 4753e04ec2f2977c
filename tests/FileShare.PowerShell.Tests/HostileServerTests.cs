using System.Buffers.Binary;
using System.Management.Automation;
using System.Net.Sockets;
using System.Security.Cryptography;
using FileShare.PowerShell.Tests.Support;
using FileShare.Protocol;
using FileShare.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>
/// A hostile server behind Get-RemoteFileList and Get-RemoteFile: every trick ends in one clear error (stable
/// ErrorId, category, host:port), nothing is written outside the destination (nor, on error, inside it), memory
/// stays bounded and nothing hangs.
/// </summary>
public sealed class HostileServerTests : IDisposable
{
    private const int FileLength = 10;
    private readonly TempDirectory _temp = new();
    private readonly PowerShellSession _session;
    private readonly string _destination;

    public HostileServerTests()
    {
        _session = new PowerShellSession(_temp.Path);
        _destination = _temp.Join("dest");
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Theory]
    [InlineData("../evil.txt")]
    [InlineData("sub/../../evil.txt")]
    [InlineData("/tmp/evil.txt")]
    [InlineData("..\\evil.txt")]
    [InlineData("C:/evil.txt")]
    public void A_listing_with_a_name_that_escapes_is_a_protocol_error_and_nothing_is_written(string evilName)
    {
        using var server = Hostile((request, channel, _, ct) => request.Type == FrameType.ListRequest
            ? SendListAsync(channel, request.RequestId, isLast: true, ["fine.txt", evilName], ct)
            : AnswerFileAsync(channel, request, ct));

        ErrorRecord listError = List(server).SingleError("ProtocolError", ErrorCategory.ProtocolError);
        ErrorRecord getError = Get(server, "*").SingleError("ProtocolError", ErrorCategory.ProtocolError);

        Assert.All([listError, getError], e => Assert.Contains($"127.0.0.1:{server.Port}", e.Exception.Message));
        Assert.DoesNotContain(TestFiles.List(_temp.Path), p => p.Contains("evil", StringComparison.Ordinal));
        Assert.False(Directory.Exists(_destination) && TestFiles.List(_destination).Length > 0);
    }

    [Theory]
    [InlineData("evil\0.txt")]
    [InlineData("bell\u0007.txt")]
    [InlineData("c1\u009B31mred.txt")]
    [InlineData("invoice\u202Efdp.exe")]
    public void A_listing_with_a_name_holding_control_or_bidi_characters_leaves_that_name_out_and_lists_the_rest(string oddName)
    {
        // As a server of an earlier version would list them: this version's servers leave such names out themselves.
        using var server = Hostile((request, channel, _, ct) => SendListAsync(channel, request.RequestId, isLast: true, ["fine.txt", oddName, "also fine.txt"], ct));

        Invocation listed = List(server).AssertNoErrors();

        Assert.Equal(["fine.txt", "also fine.txt"], listed.Objects<RemoteFileInfo>().Select(f => f.Name));
    }

    [Fact]
    public void A_huge_declared_frame_length_is_a_protocol_error_before_any_buffer_is_sized_for_it()
    {
        using var server = Hostile(async (request, _, stream, ct) =>
        {
            byte[] header = new byte[ProtocolConstants.FrameHeaderLength];
            BinaryPrimitives.WriteUInt32BigEndian(header, 0x7FFF_FFF0);
            header[4] = (byte)FrameType.ListReply;
            BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(5), request.RequestId);
            await stream.WriteAsync(header, ct);
        });
        long before = GC.GetTotalAllocatedBytes();

        ErrorRecord error = List(server).SingleError("ProtocolError", ErrorCategory.ProtocolError);

        Assert.Contains("exceeds the limit", error.Exception.Message);
        Assert.True(GC.GetTotalAllocatedBytes() - before < 256L * 1024 * 1024, "the client never sized a buffer for the declared length");
    }

    [Theory]
    [InlineData(1_000L, FileLength)]
    [InlineData(-1L, FileLength)]
    [InlineData(FileLength, -5L)]
    public void A_read_reply_with_an_impossible_length_is_a_protocol_error_and_leaves_no_file(long promised, long fileLength)
    {
        using var server = Hostile((request, channel, _, ct) => request.Type == FrameType.ReadRequest
            ? SendReadReplyAsync(channel, request.RequestId, promised, fileLength, ct)
            : AnswerFileAsync(channel, request, ct));

        ErrorRecord error = Get(server, "file.bin").SingleError("ProtocolError", ErrorCategory.ProtocolError);

        Assert.Contains($"127.0.0.1:{server.Port}", error.Exception.Message);
        Assert.Empty(TestFiles.List(_destination));
    }

    [Fact]
    public void A_read_reply_promising_a_terabyte_then_hanging_up_fails_and_leaves_no_file()
    {
        using var server = Hostile(async (request, channel, stream, ct) =>
        {
            if (request.Type != FrameType.ReadRequest)
            {
                await AnswerFileAsync(channel, request, ct);
                return;
            }

            await SendReadReplyAsync(channel, request.RequestId, 1L << 40, 1L << 40, ct);
            await stream.WriteAsync(new byte[1000], ct);
            throw new OperationCanceledException("hang up");
        });

        Invocation result = Get(server, "file.bin");

        // IncompleteTransfer, not DestinationWriteFailed: without a digest the promise is not trusted with disk space up front.
        result.SingleError("IncompleteTransfer", ErrorCategory.ConnectionError);
        Assert.Empty(TestFiles.List(_destination));
    }

    [Fact]
    public void A_read_reply_promising_more_than_the_digest_is_a_protocol_error_and_nothing_is_sized_past_the_digest()
    {
        byte[] content = "0123456789"u8.ToArray();
        var digest = new FileDigest(content.Length, DateTime.UtcNow, SHA256.HashData(content), ProtocolConstants.PieceSize, SHA256.HashData(content));
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            await ScriptedServer.AnswerHelloAsync(stream, ct);
            while (await channel.ReadFrameAsync(ct) is { } request)
            {
                if (request.Type == FrameType.HashRequest)
                {
                    SpanWriter writer = channel.BeginFrame(Messages.HashReplySize(digest, withPieces: true));
                    Messages.WriteHashReply(ref writer, digest, withPieces: true);
                    await channel.SendFrameAsync(FrameType.HashReply, request.RequestId, writer.Position, ct);
                }
                else
                {
                    await SendReadReplyAsync(channel, request.RequestId, 1L << 40, 1L << 40, ct);
                    await stream.WriteAsync(new byte[1000], ct);
                }
            }
        }, everyConnection: true);

        ErrorRecord error = Get(server, "file.bin").SingleError("ProtocolError", ErrorCategory.ProtocolError);

        Assert.Contains($"127.0.0.1:{server.Port}", error.Exception.Message);
        Assert.False(File.Exists(Path.Join(_destination, "file.bin")));
        var partial = new FileInfo(PartialFile.PathFor(Path.Join(_destination, "file.bin")));
        long sized = partial.Exists ? partial.Length : 0;
        Assert.True(sized <= content.Length, $"the partial file was sized to {sized:N0} bytes, past the digest's {content.Length}");
    }

    [Fact]
    public void An_endless_listing_stops_at_the_entry_cap_with_ListingTooLarge()
    {
        string[] names = Enumerable.Range(0, 2_000).Select(i => $"f{i:D6}").ToArray();
        using var server = Hostile(async (request, channel, _, ct) =>
        {
            while (true)
            {
                await SendListAsync(channel, request.RequestId, isLast: false, names, ct);
            }
        });
        long before = GC.GetTotalAllocatedBytes();

        ErrorRecord error = List(server).SingleError("ListingTooLarge", ErrorCategory.LimitsExceeded);

        Assert.Contains($"127.0.0.1:{server.Port}", error.Exception.Message);
        Assert.Contains("1,000,000 entries", error.Exception.Message);
        // 1,000,000 short entries cost about 100 MB at most; an unbounded client would keep going until it ran out.
        Assert.True(GC.GetTotalAllocatedBytes() - before < 1L << 30, "the listing was cut off at the cap");
    }

    [Fact]
    public void Stop_ends_a_listing_that_trickles_on_forever_promptly_and_without_an_error()
    {
        int sent = 0;
        using var server = Hostile(async (request, channel, _, ct) =>
        {
            while (true)
            {
                await SendListAsync(channel, request.RequestId, isLast: false, ["a"], ct);
                Interlocked.Increment(ref sent);
                await Task.Delay(50, ct);
            }
        });
        using RunningInvocation listing = _session.Begin("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port", new { server.Port });
        Support.Eventually.True(() => Volatile.Read(ref sent) > 5, "the listing is under way");

        // A hang guard: the listing never ends, so a Stop that did not cut it would never return.
        Support.Eventually.Within(listing.Shell.Stop, TimeSpan.FromSeconds(15), "PowerShell.Stop()");

        Assert.Equal(PSInvocationState.Stopped, listing.Shell.InvocationStateInfo.State);
        Assert.Empty(listing.Wait(TimeSpan.FromSeconds(1)).Errors);
    }

    [Fact]
    public void A_server_silent_in_the_middle_of_a_frame_times_out_with_ServerTimeout()
    {
        using var server = Hostile(async (request, _, stream, ct) =>
        {
            await stream.WriteAsync(new byte[] { 0, 0, 0, 40, (byte)FrameType.ListReply }, ct);
            await Task.Delay(Timeout.Infinite, ct);
        });

        Invocation result = _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -TimeoutSec 2", new { server.Port });

        ErrorRecord error = result.SingleError("ServerTimeout", ErrorCategory.OperationTimeout);
        Assert.Contains($"127.0.0.1:{server.Port}", error.Exception.Message);
        Assert.True(result.Duration < TimeSpan.FromSeconds(20), $"took {result.Duration.TotalSeconds:0.0} s");
    }

    private delegate Task Responder(Frame request, FrameChannel channel, NetworkStream stream, CancellationToken cancellationToken);

    /// <summary>A server that shakes hands properly, refuses hash requests, and answers every other request with <paramref name="respond"/>.</summary>
    private static ScriptedServer Hostile(Responder respond) => new(async (_, stream, ct) =>
    {
        using var channel = new FrameChannel(stream);
        Frame request = await ScriptedServer.AcceptRequestAsync(stream, channel, ct);
        while (true)
        {
            await respond(request, channel, stream, ct);
            Frame? next = await channel.ReadFrameAsync(ct);
            if (next is null)
            {
                return;
            }

            request = next.Value;
            if (request.Type == FrameType.HashRequest)
            {
                await channel.SendErrorAsync(FrameType.ErrorReply, request.RequestId, StatusCode.BadRequest, "no hashes here", ct);
                request = (await channel.ReadFrameAsync(ct))!.Value;
            }
        }
    }, everyConnection: true);

    /// <summary>The honest answer about the one file this server claims to have: a stat, or a listing of it.</summary>
    private static async Task AnswerFileAsync(FrameChannel channel, Frame request, CancellationToken cancellationToken)
    {
        if (request.Type == FrameType.ListRequest)
        {
            await SendListAsync(channel, request.RequestId, isLast: true, ["file.bin"], cancellationToken);
            return;
        }

        var entry = new RemoteEntry("file.bin", FileLength, DateTime.UtcNow);
        SpanWriter writer = channel.BeginFrame(2 + Messages.EntrySize(entry));
        Messages.WriteStatReply(ref writer, entry);
        await channel.SendFrameAsync(FrameType.StatReply, request.RequestId, writer.Position, cancellationToken);
    }

    private static async Task SendListAsync(FrameChannel channel, uint requestId, bool isLast, string[] names, CancellationToken cancellationToken)
    {
        RemoteEntry[] entries = names.Select(n => new RemoteEntry(n, FileLength, DateTime.UtcNow)).ToArray();
        SpanWriter writer = channel.BeginFrame(Messages.ListReplyPrefix + entries.Sum(e => Messages.EntrySize(e)));
        Messages.WriteListReplyPrefix(ref writer, isLast, entries.Length);
        foreach (RemoteEntry entry in entries)
        {
            Messages.WriteEntry(ref writer, entry);
        }

        await channel.SendFrameAsync(FrameType.ListReply, requestId, writer.Position, cancellationToken);
    }

    private static async Task SendReadReplyAsync(FrameChannel channel, uint requestId, long promised, long fileLength, CancellationToken cancellationToken)
    {
        // Written by hand: the honest encoder would be fine with these numbers, but the point is what the client does with them.
        SpanWriter writer = channel.BeginFrame(32);
        writer.WriteUInt16((ushort)StatusCode.Ok);
        writer.WriteInt64(promised);
        writer.WriteInt64(fileLength);
        writer.WriteInt64(DateTime.UtcNow.Ticks);
        await channel.SendFrameAsync(FrameType.ReadReply, requestId, writer.Position, cancellationToken);
    }

    private Invocation List(ScriptedServer server) =>
        _session.Run("param($Port) Get-RemoteFileList -ComputerName 127.0.0.1 -Port $Port -Recurse -TimeoutSec 10", new { server.Port });

    private Invocation Get(ScriptedServer server, string name) =>
        _session.Run("param($Port, $Name, $Dest) Get-RemoteFile -Name $Name -ComputerName 127.0.0.1 -Port $Port -Destination $Dest -TimeoutSec 10",
            new { server.Port, Name = name, Dest = _destination });
}

using FileShare.Protocol;

namespace FileShare.Tests.Protocol;

public sealed class MessagesTests
{
    private delegate void BodyWriter(ref SpanWriter writer);

    private static readonly DateTime SomeTime = new(2024, 2, 29, 13, 14, 15, DateTimeKind.Utc);
    private static readonly RemoteEntry[] SomeEntries =
    [
        new("a.txt", 0, DateTime.MinValue),
        new("sub/naïve file ✓.bin", long.MaxValue, SomeTime),
        new("sub", 0, DateTime.MaxValue, EntryKind.Directory),
    ];

    /// <summary>A well-formed body of each message, and the decoder the receiving end applies to it.</summary>
    public static TheoryData<string> Bodies => new(Samples.Keys);

    private static readonly Dictionary<string, (byte[] Body, Action<byte[]> Read)> Samples = new()
    {
        ["ListRequest"] = (Encode((ref SpanWriter w) => Messages.WriteListRequest(ref w, "sub/dir", ListOptions.Recursive)), b => Messages.ReadListRequest(b)),
        ["PathRequest"] = (Encode((ref SpanWriter w) => Messages.WritePathRequest(ref w, "x/y.txt")), b => Messages.ReadPathRequest(b)),
        ["ReadRequest"] = (Encode((ref SpanWriter w) => Messages.WriteReadRequest(ref w, "x.bin", 5, 7)), b => Messages.ReadReadRequest(b)),
        ["ListReply"] = (EncodeListReply(isLast: true, SomeEntries), b => Messages.ReadListReply(b, [], out _, out _)),
        ["StatReply"] = (Encode((ref SpanWriter w) => Messages.WriteStatReply(ref w, SomeEntries[1])), b => Messages.ReadStatReply(b, out _, out _)),
        ["ReadReply"] = (Encode((ref SpanWriter w) => Messages.WriteReadReply(ref w, new RangeReply(3, 10, SomeTime))), b => Messages.ReadReadReply(b, out _, out _)),
        ["ErrorReply"] = (Encode((ref SpanWriter w) => Messages.WriteError(ref w, StatusCode.NotFound, "no such file")), b => Messages.ReadStatReply(b, out _, out _)),
    };

    [Fact]
    public void Client_hello_round_trips()
    {
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteClientHello(hello, minVersion: 1, maxVersion: 7, features: 0xDEADBEEF);

        Assert.True(Messages.StartsWithMagic(hello));
        Assert.Equal((1, 7, 0xDEADBEEF), Messages.ReadHello(hello));
    }

    [Fact]
    public void Server_hello_round_trips_its_status()
    {
        byte[] hello = new byte[ProtocolConstants.HelloLength];
        Messages.WriteServerHello(hello, version: 1, StatusCode.Busy, features: 2);

        Assert.Equal((1, (ushort)StatusCode.Busy, 2u), Messages.ReadHello(hello));
    }

    [Fact]
    public void The_magic_starts_with_nul_so_no_seed_file_name_can_look_like_a_hello()
    {
        Assert.Equal(0, ProtocolConstants.Magic[0]);
        Assert.False(Messages.StartsWithMagic("FSP\0hello.txt"u8));
        Assert.Throws<ProtocolException>(() => Messages.ReadHello("ok and then file bytes"u8.ToArray()));
    }

    [Fact]
    public void List_request_round_trips()
    {
        Assert.Equal(("sub/dir", ListOptions.Recursive), Messages.ReadListRequest(Samples["ListRequest"].Body));
    }

    [Fact]
    public void Path_request_round_trips()
    {
        Assert.Equal("x/y.txt", Messages.ReadPathRequest(Samples["PathRequest"].Body));
    }

    [Fact]
    public void Read_request_round_trips_offset_and_length()
    {
        Assert.Equal(("x.bin", 5L, 7L), Messages.ReadReadRequest(Samples["ReadRequest"].Body));
        byte[] toEnd = Encode((ref SpanWriter w) => Messages.WriteReadRequest(ref w, "big", long.MaxValue - 1, -1));
        Assert.Equal(("big", long.MaxValue - 1, -1L), Messages.ReadReadRequest(toEnd));
    }

    [Fact]
    public void List_reply_round_trips_every_entry_and_the_last_flag()
    {
        var entries = new List<RemoteEntry>();
        bool last = Messages.ReadListReply(Samples["ListReply"].Body, entries, out StatusCode status, out string? message);

        Assert.True(last);
        Assert.Equal(StatusCode.Ok, status);
        Assert.Null(message);
        Assert.Equal(SomeEntries, entries);
        Assert.All(entries, e => Assert.Equal(DateTimeKind.Utc, e.LastWriteTimeUtc.Kind));
    }

    [Fact]
    public void A_list_reply_that_is_not_the_last_says_so()
    {
        var entries = new List<RemoteEntry>();
        Assert.False(Messages.ReadListReply(EncodeListReply(isLast: false, []), entries, out _, out _));
        Assert.Empty(entries);
    }

    [Fact]
    public void Stat_reply_round_trips()
    {
        RemoteEntry? entry = Messages.ReadStatReply(Samples["StatReply"].Body, out StatusCode status, out _);

        Assert.Equal(StatusCode.Ok, status);
        Assert.Equal(SomeEntries[1], entry);
    }

    [Fact]
    public void Read_reply_round_trips()
    {
        RangeReply? reply = Messages.ReadReadReply(Samples["ReadReply"].Body, out StatusCode status, out _);

        Assert.Equal(StatusCode.Ok, status);
        Assert.Equal(new RangeReply(3, 10, SomeTime), reply);
    }

    [Fact]
    public void Every_reply_decoder_reads_an_error_as_status_and_message()
    {
        byte[] error = Samples["ErrorReply"].Body;

        Assert.Null(Messages.ReadStatReply(error, out StatusCode status, out string? message));
        Assert.Equal((StatusCode.NotFound, "no such file"), (status, message));
        Assert.Null(Messages.ReadReadReply(error, out status, out message));
        Assert.Equal((StatusCode.NotFound, "no such file"), (status, message));
        Assert.True(Messages.ReadListReply(error, [], out status, out message));
        Assert.Equal((StatusCode.NotFound, "no such file"), (status, message));
    }

    [Fact]
    public void A_long_error_message_is_cut_to_a_size_every_reader_accepts()
    {
        byte[] body = Encode((ref SpanWriter w) => Messages.WriteError(ref w, StatusCode.ServerError, new string('€', 5000)), capacity: 20000);

        Messages.ReadStatReply(body, out StatusCode status, out string? message);
        Assert.Equal(StatusCode.ServerError, status);
        Assert.Equal(new string('€', 1024), message);
    }

    [Theory]
    [MemberData(nameof(Bodies))]
    public void A_body_cut_short_anywhere_throws(string kind)
    {
        (byte[] body, Action<byte[]> read) = Samples[kind];
        read(body);
        for (int length = 0; length < body.Length; length++)
        {
            byte[] cut = body[..length];
            Assert.Throws<ProtocolException>(() => read(cut));
        }
    }

    [Theory]
    [MemberData(nameof(Bodies))]
    public void A_body_with_a_trailing_byte_throws(string kind)
    {
        (byte[] body, Action<byte[]> read) = Samples[kind];
        Assert.Throws<ProtocolException>(() => read([.. body, 0]));
    }

    [Fact]
    public void A_path_with_invalid_utf8_throws()
    {
        byte[] body = [0, 0, 0, 3, (byte)'a', 0xFF, (byte)'b'];
        Assert.Throws<ProtocolException>(() => Messages.ReadPathRequest(body));
    }

    [Fact]
    public void A_path_over_the_limit_throws()
    {
        string path = new('a', ProtocolConstants.MaxPathBytes + 1);
        byte[] body = Encode((ref SpanWriter w) => Messages.WritePathRequest(ref w, path), capacity: SpanWriter.StringSize(path));
        Assert.Throws<ProtocolException>(() => Messages.ReadPathRequest(body));
    }

    [Fact]
    public void An_entry_with_a_negative_length_throws()
    {
        byte[] body = Encode((ref SpanWriter w) => Messages.WriteStatReply(ref w, new RemoteEntry("x", -1, SomeTime)));
        Assert.Throws<ProtocolException>(() => Messages.ReadStatReply(body, out _, out _));
    }

    [Fact]
    public void An_entry_with_an_impossible_time_throws()
    {
        byte[] body = Encode((ref SpanWriter w) => Messages.WriteStatReply(ref w, new RemoteEntry("x", 1, SomeTime)));
        body.AsSpan(body.Length - 10, 8).Fill(0xFF); // ticks sit before the kind and hash-length bytes
        Assert.Throws<ProtocolException>(() => Messages.ReadStatReply(body, out _, out _));
    }

    [Theory]
    [InlineData(11, 10)]
    [InlineData(-1, 10)]
    [InlineData(0, -1)]
    public void A_read_reply_promising_an_impossible_length_throws(long dataLength, long fileLength)
    {
        byte[] body = Encode((ref SpanWriter w) => Messages.WriteReadReply(ref w, new RangeReply(dataLength, fileLength, SomeTime)));
        Assert.Throws<ProtocolException>(() => Messages.ReadReadReply(body, out _, out _));
    }

    private static byte[] Encode(BodyWriter write, int capacity = 1024)
    {
        byte[] buffer = new byte[capacity];
        var writer = new SpanWriter(buffer);
        write(ref writer);
        return buffer[..writer.Position];
    }

    private static byte[] EncodeListReply(bool isLast, RemoteEntry[] entries) => Encode((ref SpanWriter w) =>
    {
        Messages.WriteListReplyPrefix(ref w, isLast, entries.Length);
        foreach (RemoteEntry entry in entries)
        {
            Messages.WriteEntry(ref w, entry);
        }
    });
}

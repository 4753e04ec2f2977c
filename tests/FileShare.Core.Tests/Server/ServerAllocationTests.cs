using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FileShare.Protocol;
using FileShare.Server;
using FileShare.Tests.Client;
using FileShare.Tests.Support;
using Xunit.Abstractions;

namespace FileShare.Tests.Server;

/// <summary>
/// What the server allocates to serve a read, measured without a .NET client in the way: the client here is a
/// blocking socket driven from the test thread with buffers made beforehand, and whatever that thread allocates is
/// taken off the process-wide count. Every byte the server allocates stays in memory until the GC next runs, and a
/// server process with a large first-generation budget may not run it for a long while.
/// </summary>
[Collection(nameof(AllocationMeasurement))]
public sealed class ServerAllocationTests(ITestOutputHelper output) : ServerTestBase
{
    private const int Small = TestFiles.MiB;
    private const int Large = 64 * TestFiles.MiB;
    private const int RequestsPerRun = 8;

    [Fact]
    public void Serving_a_read_allocates_a_small_fixed_amount_whatever_the_range_length()
    {
        TestFiles.WriteRandom(Share("small.bin"), Small);
        TestFiles.WriteRandom(Share("large.bin"), Large);
        FileShareServer server = StartServer();
        using var client = new BlockingClient(server);
        client.Read("small.bin", Small);
        client.Read("large.bin", Large);

        // The least of several runs: now and then a run pays for something else in the process (the test host's own
        // traffic, a pool refilling), and such runs come in clusters.
        long small = long.MaxValue, large = long.MaxValue;
        for (int run = 0; run < 5; run++)
        {
            small = Math.Min(small, client.MeasurePerRead("small.bin", Small));
            large = Math.Min(large, client.MeasurePerRead("large.bin", Large));
        }

        output.WriteLine($"server allocations per read: {small:N0} bytes for 1 MiB, {large:N0} bytes for 64 MiB");
        // The 64 MiB range goes out in about three chunks more than the 1 MiB one (more if this thread reads slowly),
        // and a chunk allocates only what the runtime's sendfile call does, a few hundred bytes: 1.3-2.6 KiB here.
        // Chunks of at most 4 MiB, as before, made that difference 12 KiB.
        Assert.True(large - small < 6 * 1024, $"a 1 MiB read allocated {small:N0} bytes and a 64 MiB one {large:N0}");
        // Parsing the request, opening and checking the file, the reply, the log record: about 3 KiB here.
        Assert.True(small < 8 * 1024, $"a 1 MiB read allocated {small:N0} bytes");
    }

    /// <summary>One FileShare connection over a blocking socket; reads whole files into one reused buffer.</summary>
    private sealed class BlockingClient : IDisposable
    {
        private readonly FileShareServer _server;
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly byte[] _buffer = new byte[256 * 1024];
        private readonly Dictionary<string, byte[]> _requests = [];

        public BlockingClient(FileShareServer server)
        {
            _server = server;
            _socket.Connect(new IPEndPoint(IPAddress.Loopback, server.Port));
            Span<byte> hello = stackalloc byte[ProtocolConstants.HelloLength];
            Messages.WriteClientHello(hello, ProtocolConstants.MinVersion, ProtocolConstants.MaxVersion, 0);
            _socket.Send(hello);
            ReceiveExactly(hello);
            Assert.Equal(StatusCode.Ok, (StatusCode)Messages.ReadHello(hello).Second);
        }

        /// <summary>Bytes the server allocated per read of the whole file, averaged over a few reads in a row.</summary>
        public long MeasurePerRead(string name, int length)
        {
            long served = _server.Statistics.Requests;
            long before = GC.GetTotalAllocatedBytes(precise: true);
            long mine = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < RequestsPerRun; i++)
            {
                Read(name, length);
            }

            // The request is over for the server once it has logged it, a moment after the client has the last byte.
            Assert.True(SpinWait.SpinUntil(() => _server.Statistics.Requests >= served + RequestsPerRun, TimeSpan.FromSeconds(30)), "the server did not log every read within 30 s");
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - before - (GC.GetAllocatedBytesForCurrentThread() - mine);
            return allocated / RequestsPerRun;
        }

        public void Read(string name, int length)
        {
            if (!_requests.TryGetValue(name, out byte[]? request))
            {
                request = RawPeer.Frame(FrameType.ReadRequest, 1, RawPeer.PathBody(name, (0, -1)));
                _requests[name] = request;
            }

            _socket.Send(request);
            Span<byte> header = _buffer.AsSpan(0, ProtocolConstants.FrameHeaderLength);
            ReceiveExactly(header);
            Assert.Equal(FrameType.ReadReply, (FrameType)header[4]);
            int body = (int)BinaryPrimitives.ReadUInt32BigEndian(header);
            ReceiveExactly(_buffer.AsSpan(0, body));
            RangeReply? reply = Messages.ReadReadReply(_buffer.AsSpan(0, body), out StatusCode status, out _);
            Assert.Equal(StatusCode.Ok, status);
            Assert.Equal(length, reply!.Value.DataLength);
            for (long left = length; left > 0;)
            {
                left -= ReceiveSome(_buffer.AsSpan(0, (int)Math.Min(left, _buffer.Length)));
            }
        }

        private void ReceiveExactly(Span<byte> destination)
        {
            while (!destination.IsEmpty)
            {
                destination = destination[ReceiveSome(destination)..];
            }
        }

        private int ReceiveSome(Span<byte> destination)
        {
            int read = _socket.Receive(destination);
            Assert.True(read > 0, "the server closed the connection");
            return read;
        }

        public void Dispose() => _socket.Dispose();
    }
}

using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using FileShare.Client;
using FileShare.Protocol;
using FileShare.Tests.Support;
using Microsoft.Win32.SafeHandles;

namespace FileShare.Tests.Client;

public sealed class ReceiveLowWaterMarkTests : ServerTestBase
{
    private const int SocketLevel = 1;
    private const int RcvLowAt = 18;
    private const long MiB = 1024 * 1024;

    [LinuxFact("SO_RCVLOWAT is set on Linux only")]
    public async Task A_fast_body_raises_the_mark_and_a_pause_or_its_end_brings_it_back_down()
    {
        (Socket receiving, Socket sending) = await ConnectedPairAsync();
        using (sending)
        using (receiving)
        using (ReceiveLowWaterMark mark = ReceiveLowWaterMark.For(receiving)!)
        {
            mark.Begin();
            long received = 0;
            await Eventually.TrueAsync(() =>
            {
                received += 64 * MiB;
                mark.Update(received, remaining: 1L << 40);
                return MarkOf(receiving) > 1;
            }, "a body arriving at gigabytes a second raised the mark");
            Assert.InRange(MarkOf(receiving), 64 * 1024, MiB);

            // Nothing more arrives: the watchdog lowers it so the bytes already here are taken.
            await Eventually.TrueAsync(() => MarkOf(receiving) == 1, "the mark came down while nothing arrived", TimeSpan.FromSeconds(5));

            mark.Begin();
            await Eventually.TrueAsync(() =>
            {
                received += 64 * MiB;
                mark.Update(received, remaining: 1L << 40);
                return MarkOf(receiving) > 1;
            }, "the next fast stretch raised it again");
            mark.Update(received + 1, remaining: 100 * 1024);
            Assert.True(MarkOf(receiving) <= 100 * 1024, "never above what is still to come");
            mark.End();
            Assert.Equal(1, MarkOf(receiving));
        }
    }

    [Fact]
    public async Task A_few_bytes_after_a_fast_stretch_are_taken_while_the_sender_pauses()
    {
        const int fast = 96 * 1024 * 1024, few = 1_000;
        long promised = fast + few + MiB;
        var sendFew = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var server = new ScriptedServer(async (_, stream, ct) =>
        {
            using var channel = new FrameChannel(stream);
            Frame request = await ScriptedServer.AcceptRequestAsync(stream, channel, ct);
            await ScriptedServer.PromiseAsync(channel, request.RequestId, promised, ct);
            await stream.WriteAsync(new byte[fast], ct);
            await sendFew.Task.WaitAsync(ct);
            await stream.WriteAsync(new byte[few], ct);
            await Task.Delay(Timeout.Infinite, ct);
        });
        using FileShareConnection connection = await FileShareConnection.ConnectAsync(Host, server.Port, ClientOptions(readTimeout: TimeSpan.FromSeconds(60)), CancellationToken.None);
        await connection.RequestRangeAsync("paused.bin", 0, promised, CancellationToken.None);
        var progress = new TransferProgress();
        using var stop = new CancellationTokenSource();
        using SafeFileHandle target = File.OpenHandle(Download("paused.bin"), FileMode.CreateNew, FileAccess.Write);

        Task receiving = connection.ReceiveRangeAsync("paused.bin", target, 0, progress, stop.Token);
        await Eventually.TrueAsync(() => progress.BytesReceived == fast, "the fast stretch was received");
        sendFew.SetResult();

        await Eventually.TrueAsync(() => progress.BytesReceived == fast + few, $"the {few:N0} bytes sent after it were received while the sender paused");
        Assert.False(receiving.IsCompleted);
        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receiving);
    }

    private static int MarkOf(Socket socket)
    {
        Span<byte> value = stackalloc byte[sizeof(int)];
        socket.GetRawSocketOption(SocketLevel, RcvLowAt, value);
        return MemoryMarshal.Read<int>(value);
    }

    private static async Task<(Socket Receiving, Socket Sending)> ConnectedPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var sending = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await sending.ConnectAsync(listener.LocalEndPoint!);
        return (await listener.AcceptAsync(), sending);
    }
}

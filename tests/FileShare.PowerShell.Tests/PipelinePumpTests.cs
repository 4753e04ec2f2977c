using System.Management.Automation;
using FileShare.PowerShell.Tests.Support;

namespace FileShare.PowerShell.Tests;

/// <summary>
/// The pump every cmdlet's pipeline thread runs while the work goes on in the background: it runs what the work posts,
/// on its own thread, in order, and returns once the work has ended and everything posted has run.
/// </summary>
public sealed class PipelinePumpTests : IDisposable
{
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(10);
    private readonly PumpingCmdlet _cmdlet = new();

    public void Dispose() => _cmdlet.Dispose();

    [Fact]
    public async Task ReturnsWhenTheWorkEnds_ThoughTheWorkPostedNothing_AndNoProgressIsShown()
    {
        var pumping = new ManualResetEventSlim();
        var work = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _cmdlet.PostFromWork(pumping.Set);

        Task pump = Task.Run(() => _cmdlet.Pump(work.Task));
        Assert.True(pumping.Wait(HangLimit), "The pump never ran the posted action.");
        Assert.False(pump.IsCompleted, "The pump returned while its work was still running.");
        work.SetResult();

        // Without progress the pump waits for posts alone, no poll: only the end of the work can wake it (a hang fails here).
        await pump.WaitAsync(HangLimit);
    }

    [Fact]
    public void RunsEveryPostedAction_OnThePumpingThread_InOrder_BeforeItReturns()
    {
        var ran = new List<(int Order, int Thread)>();
        Task work = Task.Run(() =>
        {
            for (int i = 0; i < 200; i++)
            {
                int order = i;
                _cmdlet.PostFromWork(() => ran.Add((order, Environment.CurrentManagedThreadId)));
            }
        });
        int pumpingThread = 0;

        Eventually.Within(() =>
        {
            pumpingThread = Environment.CurrentManagedThreadId;
            _cmdlet.Pump(work);
        }, HangLimit, "The pump");

        Assert.Equal(Enumerable.Range(0, 200), ran.Select(r => r.Order));
        Assert.All(ran, r => Assert.Equal(pumpingThread, r.Thread));
    }

    [Fact]
    public void AWorkAlreadyEnded_ReturnsAtOnce_AfterRunningWhatItPosted()
    {
        bool ran = false;
        _cmdlet.PostFromWork(() => ran = true);

        Eventually.Within(() => _cmdlet.Pump(Task.CompletedTask), HangLimit, "The pump");

        Assert.True(ran);
    }

    [Fact]
    public async Task AWriteThatFindsThePipelineStopped_CancelsTheWork_AndLetsItWindDown_BeforeTheStopLeavesTheCmdlet()
    {
        bool wound = false;
        bool wroteAfterStop = false;
        Task work = Task.Run(async () =>
        {
            await Task.Delay(Timeout.Infinite, _cmdlet.WorkCancellation).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            wound = true;
        });
        _cmdlet.PostFromWork(() => throw new PipelineStoppedException());
        _cmdlet.PostFromWork(() => wroteAfterStop = true);

        await Assert.ThrowsAsync<PipelineStoppedException>(() => Task.Run(() => _cmdlet.Pump(work)).WaitAsync(HangLimit));

        Assert.True(wound, "The pump left before the cancelled work had wound down.");
        Assert.False(wroteAfterStop, "The pump ran a write after the pipeline had stopped.");
    }

    [Fact]
    public async Task AWriteThatFailsOtherwise_AsUnderErrorActionStop_AlsoCancelsTheWork_AndLetsItWindDown_ThenSurfaces()
    {
        bool wound = false;
        Task work = Task.Run(async () =>
        {
            await Task.Delay(Timeout.Infinite, _cmdlet.WorkCancellation).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            wound = true;
        });
        var stop = new ActionPreferenceStopException("The error action preference was Stop.");
        _cmdlet.PostFromWork(() => throw stop);

        Exception thrown = await Assert.ThrowsAsync<ActionPreferenceStopException>(() => Task.Run(() => _cmdlet.Pump(work)).WaitAsync(HangLimit));

        Assert.Same(stop, thrown);
        Assert.True(wound, "The pump left before the cancelled work had wound down.");
    }

    [Fact]
    public void ACmdletDisposedWithoutAStop_CancelsItsWork()
    {
        CancellationToken work = _cmdlet.WorkCancellation;

        _cmdlet.Dispose();

        Assert.True(work.IsCancellationRequested);
    }

    private sealed class PumpingCmdlet : FileShareCmdlet
    {
        public CancellationToken WorkCancellation => Cancellation;

        public void Pump(Task work) => PumpUntil(work);

        public void PostFromWork(Action action) => Post(action);
    }
}

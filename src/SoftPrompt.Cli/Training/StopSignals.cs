using System.Runtime.InteropServices;

namespace SoftPrompt.Cli.Training;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM, which batch schedulers send to preempt a job, both ask a run to stop after the current
/// step; the run then checkpoints and writes its outputs. A second signal of either kind ends the process at once, as usual.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    /// <summary>Exit codes of a stopped run: 128 + the signal, as shells report it.</summary>
    public const int Interrupted = 130, Terminated = 143;

    private readonly CancellationTokenSource cancel = new();
    private readonly PosixSignalRegistration? terminate;

    public StopSignals()
    {
        Console.CancelKeyPress += OnCancelKeyPress;
        try { terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnTerminate); }
        catch (PlatformNotSupportedException) { terminate = null; }
    }

    public CancellationToken Token => cancel.Token;

    /// <summary>The exit code for the signal that stopped the run.</summary>
    public int ExitCode { get; private set; } = Interrupted;

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancelKeyPress;
        terminate?.Dispose();
        cancel.Dispose();
    }

    private void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e) => e.Cancel = Stop(Interrupted);

    private void OnTerminate(PosixSignalContext context) => context.Cancel = Stop(Terminated);

    /// <summary>False for a second signal, which is then left to end the process.</summary>
    private bool Stop(int exitCode)
    {
        lock (cancel)
        {
            if (cancel.IsCancellationRequested) return false;
            ExitCode = exitCode;
            cancel.Cancel();
            return true;
        }
    }
}

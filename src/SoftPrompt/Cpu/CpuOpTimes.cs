using System.Diagnostics;

namespace SoftPrompt.Cpu;

/// <summary>What a CPU step spends its time on, by kind of op (`softprompt bench --profile`).</summary>
public enum CpuOp { Gemm, Attention, Norm, Activation, Rope, Embedding, Head, Optimizer }

/// <summary>
/// Wall time per kind of CPU op, off unless <see cref="Enabled"/>. The outermost measured op owns the time: the LM
/// head's GEMMs and loss count as <see cref="CpuOp.Head"/>, not as <see cref="CpuOp.Gemm"/>. Measured on the calling
/// thread, which is the thread that runs the engine; when off, a measurement costs one branch.
/// </summary>
public static class CpuOpTimes
{
    private static readonly long[] Ticks = new long[Enum.GetValues<CpuOp>().Length];
    private static readonly long[] Calls = new long[Ticks.Length];
    [ThreadStatic] private static bool measuring;

    public static bool Enabled { get; set; }

    public static Scope Measure(CpuOp op)
    {
        if (!Enabled || measuring) return default;
        measuring = true;
        return new Scope(op, Stopwatch.GetTimestamp());
    }

    public static void Reset()
    {
        Array.Clear(Ticks);
        Array.Clear(Calls);
    }

    /// <summary>Time and call count of every kind of op since the last <see cref="Reset"/>.</summary>
    public static IReadOnlyList<(CpuOp Op, TimeSpan Time, long Calls)> Totals() =>
        Enum.GetValues<CpuOp>().Select(op => (op, Stopwatch.GetElapsedTime(0, Ticks[(int)op]), Calls[(int)op])).ToList();

    public readonly struct Scope(CpuOp op, long started) : IDisposable
    {
        public void Dispose()
        {
            if (started == 0) return;
            Interlocked.Add(ref Ticks[(int)op], Stopwatch.GetTimestamp() - started);
            Interlocked.Increment(ref Calls[(int)op]);
            measuring = false;
        }
    }
}

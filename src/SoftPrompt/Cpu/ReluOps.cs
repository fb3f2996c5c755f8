using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>max(x, 0): T5 v1.0's feed-forward activation (nn.ReLU; its gradient at 0 is 0).</summary>
public static class ReluOps
{
    /// <summary>y, x [N]. y may alias x.</summary>
    public static void Forward<T>(Span<T> y, ReadOnlySpan<T> x) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Activation);
        if (y.Length < x.Length) throw new ArgumentException("ReLU: output shorter than input.");
        TensorPrimitives.Max(x, T.Zero, y[..x.Length]);
    }

    /// <summary>dx = x &gt; 0 ? dy : 0; dx, dy, x [N] (x the pre-activation). dx may alias dy.</summary>
    public static void Backward<T>(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> x) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Activation);
        if (dx.Length < x.Length || dy.Length < x.Length) throw new ArgumentException("ReLU backward: buffers shorter than input.");
        for (int i = 0; i < x.Length; i++) dx[i] = x[i] > T.Zero ? dy[i] : T.Zero;
    }
}

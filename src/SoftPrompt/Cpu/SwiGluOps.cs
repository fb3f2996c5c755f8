using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>Llama's SwiGLU activation: y = silu(gate) ⊙ up, silu(g) = g·σ(g) (gate = gate_proj·x, up = up_proj·x).</summary>
public static class SwiGluOps
{
    // Blocks small enough for the stack, so the vectorized sigmoid needs no buffer of the tensor's size.
    private const int Block = 512;

    /// <summary>y, gate, up [N]. y may alias neither input when the backward will need them.</summary>
    public static void Forward<T>(Span<T> y, ReadOnlySpan<T> gate, ReadOnlySpan<T> up) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Activation);
        if (y.Length < gate.Length || up.Length < gate.Length) throw new ArgumentException("SwiGLU: buffers shorter than the gate.");
        Span<T> sigma = stackalloc T[Block];
        for (int i = 0; i < gate.Length; i += Block)
        {
            int n = Math.Min(Block, gate.Length - i);
            var g = gate.Slice(i, n);
            var s = sigma[..n];
            TensorPrimitives.Sigmoid<T>(g, s);
            TensorPrimitives.Multiply(s, g, s);
            TensorPrimitives.Multiply(s, up.Slice(i, n), y.Slice(i, n));
        }
    }

    /// <summary>dUp = dy ⊙ silu(gate); dGate = dy ⊙ up ⊙ σ(gate)·(1 + gate·σ(−gate)). All [N]; dGate may alias dy.</summary>
    public static void Backward<T>(Span<T> dGate, Span<T> dUp, ReadOnlySpan<T> dy, ReadOnlySpan<T> gate, ReadOnlySpan<T> up)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Activation);
        int total = gate.Length;
        if (dGate.Length < total || dUp.Length < total || dy.Length < total || up.Length < total) throw new ArgumentException("SwiGLU backward: buffers shorter than the gate.");
        Span<T> sigma = stackalloc T[Block], slope = stackalloc T[Block], dyUp = stackalloc T[Block];
        for (int i = 0; i < total; i += Block)
        {
            int n = Math.Min(Block, total - i);
            var g = gate.Slice(i, n);
            var d = dy.Slice(i, n);
            var s = sigma[..n];
            var t = slope[..n];
            var du = dyUp[..n];
            TensorPrimitives.Multiply(d, up.Slice(i, n), du);   // read dy before dGate (which may alias it) is written
            TensorPrimitives.Sigmoid<T>(g, s);
            TensorPrimitives.Negate<T>(g, t);
            TensorPrimitives.Sigmoid<T>(t, t);
            TensorPrimitives.Multiply(t, g, t);
            TensorPrimitives.Add(t, T.One, t);                   // 1 + g·σ(−g)
            TensorPrimitives.Multiply(d, g, dUp.Slice(i, n));
            TensorPrimitives.Multiply(dUp.Slice(i, n), s, dUp.Slice(i, n));
            TensorPrimitives.Multiply(du, s, du);
            TensorPrimitives.Multiply(du, t, dGate.Slice(i, n));
        }
    }
}

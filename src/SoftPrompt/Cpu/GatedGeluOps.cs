using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>T5 v1.1's gated feed-forward activation: y = gelu_new(gate) ⊙ linear (gate = wi_0·x, linear = wi_1·x).</summary>
public static class GatedGeluOps
{
    /// <summary>y, gate, linear [N]. y may alias gate but not linear.</summary>
    public static void Forward<T>(Span<T> y, ReadOnlySpan<T> gate, ReadOnlySpan<T> linear) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Activation);
        if (y.Length < gate.Length || linear.Length < gate.Length) throw new ArgumentException("Gated GELU: buffers shorter than the gate.");
        var output = y[..gate.Length];
        GeluOps.Forward(output, gate);
        TensorPrimitives.Multiply(output, linear[..gate.Length], output);
    }

    /// <summary>
    /// dLinear = dy ⊙ gelu(gate); dGate = dy ⊙ linear ⊙ gelu'(gate). All [N]. dGate may alias dy; dLinear must alias
    /// neither dy nor gate (it is written first).
    /// </summary>
    public static void Backward<T>(Span<T> dGate, Span<T> dLinear, ReadOnlySpan<T> dy, ReadOnlySpan<T> gate, ReadOnlySpan<T> linear)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Activation);
        int n = gate.Length;
        if (dGate.Length < n || dLinear.Length < n || dy.Length < n || linear.Length < n) throw new ArgumentException("Gated GELU backward: buffers shorter than the gate.");
        GeluOps.Forward(dLinear[..n], gate);
        TensorPrimitives.Multiply(dLinear[..n], dy[..n], dLinear[..n]);
        TensorPrimitives.Multiply(dy[..n], linear[..n], dGate[..n]);
        GeluOps.Backward(dGate[..n], dGate[..n], gate);
    }
}

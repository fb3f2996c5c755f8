using System.Numerics;

namespace SoftPrompt.Cpu;

/// <summary>Llama's SwiGLU activation: y = silu(gate) ⊙ up, silu(g) = g·σ(g) (gate = gate_proj·x, up = up_proj·x).</summary>
public static class SwiGluOps
{
    /// <summary>y, gate, up [N]. y may alias neither input when the backward will need them.</summary>
    public static void Forward<T>(Span<T> y, ReadOnlySpan<T> gate, ReadOnlySpan<T> up) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (y.Length < gate.Length || up.Length < gate.Length) throw new ArgumentException("SwiGLU: buffers shorter than the gate.");
        for (int i = 0; i < gate.Length; i++) y[i] = gate[i] / (T.One + T.Exp(-gate[i])) * up[i];
    }

    /// <summary>dUp = dy ⊙ silu(gate); dGate = dy ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))). All [N]; dGate may alias dy.</summary>
    public static void Backward<T>(Span<T> dGate, Span<T> dUp, ReadOnlySpan<T> dy, ReadOnlySpan<T> gate, ReadOnlySpan<T> up)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = gate.Length;
        if (dGate.Length < n || dUp.Length < n || dy.Length < n || up.Length < n) throw new ArgumentException("SwiGLU backward: buffers shorter than the gate.");
        for (int i = 0; i < n; i++)
        {
            T g = gate[i], sigmoid = T.One / (T.One + T.Exp(-g)), d = dy[i];
            dUp[i] = d * g * sigmoid;
            dGate[i] = d * up[i] * sigmoid * (T.One + g * (T.One - sigmoid));
        }
    }
}

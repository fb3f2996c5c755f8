using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>
/// Causal multi-head self-attention over a packed qkv tensor, saving only the per-row logsumexp so the
/// backward recomputes the probabilities (the FlashAttention contract the kernel mirrors).
/// </summary>
public static unsafe class AttentionOps
{
    /// <summary>
    /// qkv [B, T, 3C] (q | k | v, heads of size C/H along each); out [B, T, C]; lse [B, H, T].
    /// out[b, i, h] = Σ_{j ≤ i} softmax_j(scale·q_i·k_j) v_j; lse[b, h, i] = log Σ_{j ≤ i} exp(scale·q_i·k_j); scale 1/√hs unless given.
    /// </summary>
    public static void Forward<T>(Span<T> output, Span<T> logSumExp, ReadOnlySpan<T> qkv, int batch, int sequence, int channels, int heads, T? scale = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        Check(output.Length, qkv.Length, logSumExp.Length, batch, sequence, channels, heads);
        fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = qkv)
        {
            var o = Packed(pq, po, pl, batch, sequence, channels, heads, scale);
            HeadAttention.Forward(ref o);
        }
    }

    /// <summary>
    /// dqkv [B, T, 3C] (overwritten) from dout [B, T, C], with qkv, out and lse from the forward pass.
    /// With p_ij = exp(s_ij − lse_i) and D_i = dout_i·out_i: dv_j = Σ_i p_ij dout_i,
    /// ds_ij = p_ij (dout_i·v_j − D_i), dq_i = scale·Σ_j ds_ij k_j, dk_j = scale·Σ_i ds_ij q_i.
    /// </summary>
    public static void Backward<T>(Span<T> dqkv, ReadOnlySpan<T> dout, ReadOnlySpan<T> qkv, ReadOnlySpan<T> output, ReadOnlySpan<T> logSumExp,
        int batch, int sequence, int channels, int heads, T? scale = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        Check(output.Length, qkv.Length, logSumExp.Length, batch, sequence, channels, heads);
        if (dqkv.Length < qkv.Length || dout.Length < output.Length) throw new ArgumentException("Attention backward: gradient buffers too short.");
        fixed (T* pd = dqkv) fixed (T* pdo = dout) fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = qkv)
        {
            var o = Packed(pq, po, pl, batch, sequence, channels, heads, scale);
            o.Dq = pd; o.Dk = pd + channels; o.Dv = pd + 2 * channels; o.Dout = pdo;
            HeadAttention.Backward(ref o);
        }
    }

    private static void Check(int outLength, int qkvLength, int lseLength, int batch, int sequence, int channels, int heads)
    {
        if (channels % heads != 0) throw new ArgumentException($"Attention: {channels} channels not divisible by {heads} heads.");
        long n = (long)batch * sequence;
        if (outLength < n * channels || qkvLength < n * 3 * channels || lseLength < n * heads)
            throw new ArgumentException($"Attention: buffers too short for B={batch}, T={sequence}, C={channels}, H={heads}.");
    }

    /// <summary>q | k | v side by side in each position of qkv [B, T, 3C]; out [B, T, C].</summary>
    private static HeadAttention.Operands<T> Packed<T>(T* qkv, T* output, T* logSumExp, int batch, int sequence, int channels, int heads, T? scale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> => new()
    {
        Q = qkv, K = qkv + channels, V = qkv + 2 * channels, Out = output, Lse = logSumExp,
        QueryStride = 3 * channels, KeyStride = 3 * channels, ValueStride = 3 * channels, OutStride = channels,
        B = batch, Tq = sequence, Tk = sequence, H = heads, Hs = channels / heads, Causal = true,
        Scale = scale ?? T.One / T.Sqrt(T.CreateChecked(channels / heads)),
    };
}

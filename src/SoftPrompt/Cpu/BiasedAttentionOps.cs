using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>
/// Multi-head attention with an optional additive score bias and a score scale (T5: relative-position bias, scale 1;
/// GPT-2: no bias, scale 1/√hs), over separate q, k, v so one op serves self-attention and cross-attention. Saves only
/// the per-row logsumexp; the backward recomputes the probabilities (the FlashAttention contract kernels/attention.cu
/// mirrors). Input gradients only: the bias is frozen.
/// </summary>
public static unsafe class BiasedAttentionOps
{
    /// <summary>
    /// q [B, Tq, H·hs], k and v [B, Tk, H·hs] (head h in columns h·hs ..); out [B, Tq, H·hs]; lse [B, H, Tq].
    /// s_ij = scale·(q_i·k_j) + bias[h, i, j], over the keys j &lt; keyLengths[b] and, when causal, j ≤ i;
    /// out_i = Σ_j softmax_j(s_ij) v_j; lse_i = log Σ_j exp(s_ij).
    /// bias [H, Tq, Tk] is shared by the batch, or empty for none; keyLengths [B] (each ≥ 1), or empty for all Tk keys.
    /// </summary>
    public static void Forward<T>(Span<T> output, Span<T> logSumExp, ReadOnlySpan<T> q, ReadOnlySpan<T> k, ReadOnlySpan<T> v,
        ReadOnlySpan<T> bias, ReadOnlySpan<int> keyLengths, int batch, int queryLength, int keyLength, int heads, int headSize, bool causal,
        T scale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        Check(output.Length, logSumExp.Length, q.Length, k.Length, v.Length, bias.Length, keyLengths, batch, queryLength, keyLength, heads, headSize);
        fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = q) fixed (T* pk = k) fixed (T* pv = v) fixed (T* pb = bias) fixed (int* pkl = keyLengths)
        {
            var o = Separate(po, pl, pq, pk, pv, bias.IsEmpty ? null : pb, keyLengths.IsEmpty ? null : pkl, batch, queryLength, keyLength, heads, headSize, causal, scale);
            HeadAttention.Forward(ref o);
        }
    }

    /// <summary>
    /// dq [B, Tq, H·hs], dk and dv [B, Tk, H·hs] (overwritten) from dout [B, Tq, H·hs], with the forward's inputs, out and lse.
    /// With p_ij = exp(s_ij − lse_i) and D_i = dout_i·out_i: dv_j = Σ_i p_ij dout_i, ds_ij = p_ij (dout_i·v_j − D_i),
    /// dq_i = scale·Σ_j ds_ij k_j, dk_j = scale·Σ_i ds_ij q_i. Keys outside every query's window get zero gradient.
    /// </summary>
    public static void Backward<T>(Span<T> dq, Span<T> dk, Span<T> dv, ReadOnlySpan<T> dout,
        ReadOnlySpan<T> q, ReadOnlySpan<T> k, ReadOnlySpan<T> v, ReadOnlySpan<T> output, ReadOnlySpan<T> logSumExp,
        ReadOnlySpan<T> bias, ReadOnlySpan<int> keyLengths, int batch, int queryLength, int keyLength, int heads, int headSize, bool causal,
        T scale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        Check(output.Length, logSumExp.Length, q.Length, k.Length, v.Length, bias.Length, keyLengths, batch, queryLength, keyLength, heads, headSize);
        long width = (long)heads * headSize;
        if (dq.Length < batch * queryLength * width || dout.Length < batch * queryLength * width || dk.Length < batch * keyLength * width || dv.Length < batch * keyLength * width)
            throw new ArgumentException("Biased attention backward: gradient buffers too short.");
        fixed (T* pdq = dq) fixed (T* pdk = dk) fixed (T* pdv = dv) fixed (T* pdo = dout)
        fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = q) fixed (T* pk = k) fixed (T* pv = v) fixed (T* pb = bias) fixed (int* pkl = keyLengths)
        {
            var o = Separate(po, pl, pq, pk, pv, bias.IsEmpty ? null : pb, keyLengths.IsEmpty ? null : pkl, batch, queryLength, keyLength, heads, headSize, causal, scale);
            o.Dq = pdq; o.Dk = pdk; o.Dv = pdv; o.Dout = pdo;
            HeadAttention.Backward(ref o);
        }
    }

    private static void Check(int outLength, int lseLength, int qLength, int kLength, int vLength, int biasLength, ReadOnlySpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize)
    {
        long width = (long)heads * headSize;
        if (outLength < batch * queryLength * width || qLength < batch * queryLength * width || kLength < batch * keyLength * width
            || vLength < batch * keyLength * width || lseLength < (long)batch * heads * queryLength)
            throw new ArgumentException($"Biased attention: buffers too short for B={batch}, Tq={queryLength}, Tk={keyLength}, H={heads}, hs={headSize}.");
        if (biasLength != 0 && biasLength < (long)heads * queryLength * keyLength)
            throw new ArgumentException($"Biased attention: bias holds {biasLength} values, [H={heads}, Tq={queryLength}, Tk={keyLength}] needs {(long)heads * queryLength * keyLength}.");
        if (keyLengths.IsEmpty) return;
        if (keyLengths.Length < batch) throw new ArgumentException($"Biased attention: {keyLengths.Length} key lengths for {batch} rows.");
        for (int b = 0; b < batch; b++)
            if (keyLengths[b] < 1 || keyLengths[b] > keyLength)
                throw new ArgumentException($"Biased attention: row {b} has key length {keyLengths[b]}, outside [1, {keyLength}] (every query needs a key to attend to).");
    }

    /// <summary>q, out [B, Tq, H·hs] and k, v [B, Tk, H·hs], each tensor of its own.</summary>
    private static HeadAttention.Operands<T> Separate<T>(T* output, T* logSumExp, T* q, T* k, T* v, T* bias, int* keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal, T scale) where T : unmanaged => new()
    {
        Q = q, K = k, V = v, Out = output, Lse = logSumExp, Bias = bias, KeyLengths = keyLengths,
        QueryStride = heads * headSize, KeyStride = heads * headSize, ValueStride = heads * headSize, OutStride = heads * headSize,
        B = batch, Tq = queryLength, Tk = keyLength, H = heads, Hs = headSize, Causal = causal, Scale = scale,
    };
}

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
        Check(output.Length, logSumExp.Length, q.Length, k.Length, v.Length, bias.Length, keyLengths, batch, queryLength, keyLength, heads, headSize);
        fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = q) fixed (T* pk = k) fixed (T* pv = v) fixed (T* pb = bias) fixed (int* pkl = keyLengths)
        {
            var job = new Job<T>
            {
                Out = po, Lse = pl, Q = pq, K = pk, V = pv, Bias = bias.IsEmpty ? null : pb, KeyLengths = keyLengths.IsEmpty ? null : pkl,
                B = batch, Tq = queryLength, Tk = keyLength, H = heads, Hs = headSize, Causal = causal, Scale = scale,
            };
            CpuParallel.For(batch * heads, &ForwardHead<T>, &job);
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
        Check(output.Length, logSumExp.Length, q.Length, k.Length, v.Length, bias.Length, keyLengths, batch, queryLength, keyLength, heads, headSize);
        long width = (long)heads * headSize;
        if (dq.Length < batch * queryLength * width || dout.Length < batch * queryLength * width || dk.Length < batch * keyLength * width || dv.Length < batch * keyLength * width)
            throw new ArgumentException("Biased attention backward: gradient buffers too short.");
        fixed (T* pdq = dq) fixed (T* pdk = dk) fixed (T* pdv = dv) fixed (T* pdo = dout)
        fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = q) fixed (T* pk = k) fixed (T* pv = v) fixed (T* pb = bias) fixed (int* pkl = keyLengths)
        {
            var job = new Job<T>
            {
                Dq = pdq, Dk = pdk, Dv = pdv, Dout = pdo,
                Out = po, Lse = pl, Q = pq, K = pk, V = pv, Bias = bias.IsEmpty ? null : pb, KeyLengths = keyLengths.IsEmpty ? null : pkl,
                B = batch, Tq = queryLength, Tk = keyLength, H = heads, Hs = headSize, Causal = causal, Scale = scale,
            };
            CpuParallel.For(batch * heads, &BackwardHead<T>, &job);
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

    private struct Job<T> where T : unmanaged
    {
        public T* Out, Lse, Q, K, V, Bias, Dq, Dk, Dv, Dout;
        public int* KeyLengths;
        public int B, Tq, Tk, H, Hs;
        public bool Causal;
        public T Scale;
    }

    /// <summary>Keys query i may see: j &lt; KeysFor(i).</summary>
    private static int KeysFor<T>(ref Job<T> j, int b, int i) where T : unmanaged
    {
        int keys = j.KeyLengths is null ? j.Tk : j.KeyLengths[b];
        return j.Causal ? Math.Min(keys, i + 1) : keys;
    }

    private static void ForwardHead<T>(void* state, int item) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        int b = item / j.H, h = item % j.H, hs = j.Hs, width = j.H * hs;
        Span<T> scores = j.Tk <= 2048 ? stackalloc T[j.Tk] : new T[j.Tk];
        T* q0 = j.Q + (long)b * j.Tq * width + h * hs, k0 = j.K + (long)b * j.Tk * width + h * hs, v0 = j.V + (long)b * j.Tk * width + h * hs;
        T* bias = j.Bias is null ? null : j.Bias + (long)h * j.Tq * j.Tk;
        for (int i = 0; i < j.Tq; i++)
        {
            int keys = KeysFor(ref j, b, i);
            var q = new ReadOnlySpan<T>(q0 + (long)i * width, hs);
            for (int t = 0; t < keys; t++)
                scores[t] = j.Scale * TensorPrimitives.Dot(q, new ReadOnlySpan<T>(k0 + (long)t * width, hs)) + (bias is null ? T.Zero : bias[(long)i * j.Tk + t]);
            var row = scores[..keys];
            T max = TensorPrimitives.Max<T>(row);
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            T sum = TensorPrimitives.Sum<T>(row);
            var o = new Span<T>(j.Out + ((long)b * j.Tq + i) * width + h * hs, hs);
            o.Clear();
            T inverse = T.One / sum;
            for (int t = 0; t < keys; t++)
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(v0 + (long)t * width, hs), row[t] * inverse, o, o);
            j.Lse[((long)b * j.H + h) * j.Tq + i] = max + T.Log(sum);
        }
    }

    private static void BackwardHead<T>(void* state, int item) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        int b = item / j.H, h = item % j.H, hs = j.Hs, width = j.H * hs;
        long queryBase = (long)b * j.Tq * width + h * hs, keyBase = (long)b * j.Tk * width + h * hs;
        T* bias = j.Bias is null ? null : j.Bias + (long)h * j.Tq * j.Tk;
        for (int t = 0; t < j.Tq; t++) new Span<T>(j.Dq + queryBase + (long)t * width, hs).Clear();
        for (int t = 0; t < j.Tk; t++)
        {
            new Span<T>(j.Dk + keyBase + (long)t * width, hs).Clear();
            new Span<T>(j.Dv + keyBase + (long)t * width, hs).Clear();
        }
        for (int i = 0; i < j.Tq; i++)
        {
            int keys = KeysFor(ref j, b, i);
            long row = queryBase + (long)i * width;
            var q = new ReadOnlySpan<T>(j.Q + row, hs);
            var dq = new Span<T>(j.Dq + row, hs);
            var dout = new ReadOnlySpan<T>(j.Dout + row, hs);
            T lse = j.Lse[((long)b * j.H + h) * j.Tq + i];
            T d = TensorPrimitives.Dot(dout, new ReadOnlySpan<T>(j.Out + row, hs));
            for (int t = 0; t < keys; t++)
            {
                long key = keyBase + (long)t * width;
                var k = new ReadOnlySpan<T>(j.K + key, hs);
                T s = j.Scale * TensorPrimitives.Dot(q, k) + (bias is null ? T.Zero : bias[(long)i * j.Tk + t]);
                T p = T.Exp(s - lse);
                var dv = new Span<T>(j.Dv + key, hs);
                TensorPrimitives.MultiplyAdd(dout, p, dv, dv);
                T ds = p * (TensorPrimitives.Dot(dout, new ReadOnlySpan<T>(j.V + key, hs)) - d) * j.Scale;  // d(scale·q·k)
                TensorPrimitives.MultiplyAdd(k, ds, dq, dq);
                var dk = new Span<T>(j.Dk + key, hs);
                TensorPrimitives.MultiplyAdd(q, ds, dk, dk);
            }
        }
    }
}

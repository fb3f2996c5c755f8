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
        Check(output.Length, qkv.Length, logSumExp.Length, batch, sequence, channels, heads);
        fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = qkv)
        {
            var job = new Job<T> { Out = po, Lse = pl, Qkv = pq, B = batch, Seq = sequence, C = channels, H = heads, Scale = scale ?? T.One / T.Sqrt(T.CreateChecked(channels / heads)) };
            CpuParallel.For(batch * heads, &ForwardHead<T>, &job);
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
        Check(output.Length, qkv.Length, logSumExp.Length, batch, sequence, channels, heads);
        if (dqkv.Length < qkv.Length || dout.Length < output.Length) throw new ArgumentException("Attention backward: gradient buffers too short.");
        fixed (T* pd = dqkv) fixed (T* pdo = dout) fixed (T* po = output) fixed (T* pl = logSumExp) fixed (T* pq = qkv)
        {
            var job = new Job<T> { Dqkv = pd, Dout = pdo, Out = po, Lse = pl, Qkv = pq, B = batch, Seq = sequence, C = channels, H = heads, Scale = scale ?? T.One / T.Sqrt(T.CreateChecked(channels / heads)) };
            CpuParallel.For(batch * heads, &BackwardHead<T>, &job);
        }
    }

    private static void Check(int outLength, int qkvLength, int lseLength, int batch, int sequence, int channels, int heads)
    {
        if (channels % heads != 0) throw new ArgumentException($"Attention: {channels} channels not divisible by {heads} heads.");
        long n = (long)batch * sequence;
        if (outLength < n * channels || qkvLength < n * 3 * channels || lseLength < n * heads)
            throw new ArgumentException($"Attention: buffers too short for B={batch}, T={sequence}, C={channels}, H={heads}.");
    }

    private struct Job<T> where T : unmanaged
    {
        public T* Out, Lse, Qkv, Dqkv, Dout;
        public int B, Seq, C, H;
        public T Scale;
    }

    private static void ForwardHead<T>(void* state, int item) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        int b = item / j.H, h = item % j.H, hs = j.C / j.H, c3 = 3 * j.C;
        T scale = j.Scale;
        Span<T> scores = j.Seq <= 2048 ? stackalloc T[j.Seq] : new T[j.Seq];
        T* baseQkv = j.Qkv + (long)b * j.Seq * c3;
        for (int i = 0; i < j.Seq; i++)
        {
            var q = new ReadOnlySpan<T>(baseQkv + (long)i * c3 + h * hs, hs);
            for (int t = 0; t <= i; t++)
                scores[t] = TensorPrimitives.Dot(q, new ReadOnlySpan<T>(baseQkv + (long)t * c3 + j.C + h * hs, hs)) * scale;
            var row = scores[..(i + 1)];
            T max = TensorPrimitives.Max<T>(row);
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            T sum = TensorPrimitives.Sum<T>(row);
            var o = new Span<T>(j.Out + ((long)b * j.Seq + i) * j.C + h * hs, hs);
            o.Clear();
            T inverse = T.One / sum;
            for (int t = 0; t <= i; t++)
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(baseQkv + (long)t * c3 + 2 * j.C + h * hs, hs), row[t] * inverse, o, o);
            j.Lse[((long)b * j.H + h) * j.Seq + i] = max + T.Log(sum);
        }
    }

    private static void BackwardHead<T>(void* state, int item) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        int b = item / j.H, h = item % j.H, hs = j.C / j.H, c3 = 3 * j.C;
        T scale = j.Scale;
        T* baseQkv = j.Qkv + (long)b * j.Seq * c3;
        T* baseD = j.Dqkv + (long)b * j.Seq * c3;
        for (int t = 0; t < j.Seq; t++)
            for (int part = 0; part < 3; part++)
                new Span<T>(baseD + (long)t * c3 + part * j.C + h * hs, hs).Clear();
        for (int i = 0; i < j.Seq; i++)
        {
            var q = new ReadOnlySpan<T>(baseQkv + (long)i * c3 + h * hs, hs);
            var dq = new Span<T>(baseD + (long)i * c3 + h * hs, hs);
            var dout = new ReadOnlySpan<T>(j.Dout + ((long)b * j.Seq + i) * j.C + h * hs, hs);
            var o = new ReadOnlySpan<T>(j.Out + ((long)b * j.Seq + i) * j.C + h * hs, hs);
            T lse = j.Lse[((long)b * j.H + h) * j.Seq + i];
            T d = TensorPrimitives.Dot(dout, o);
            for (int t = 0; t <= i; t++)
            {
                var k = new ReadOnlySpan<T>(baseQkv + (long)t * c3 + j.C + h * hs, hs);
                var v = new ReadOnlySpan<T>(baseQkv + (long)t * c3 + 2 * j.C + h * hs, hs);
                T p = T.Exp(TensorPrimitives.Dot(q, k) * scale - lse);
                var dv = new Span<T>(baseD + (long)t * c3 + 2 * j.C + h * hs, hs);
                TensorPrimitives.MultiplyAdd(dout, p, dv, dv);
                T ds = p * (TensorPrimitives.Dot(dout, v) - d) * scale;
                TensorPrimitives.MultiplyAdd(k, ds, dq, dq);
                var dk = new Span<T>(baseD + (long)t * c3 + j.C + h * hs, hs);
                TensorPrimitives.MultiplyAdd(q, ds, dk, dk);
            }
        }
    }
}

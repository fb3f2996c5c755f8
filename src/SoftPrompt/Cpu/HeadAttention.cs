using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>
/// The attention arithmetic behind <see cref="AttentionOps"/> and <see cref="BiasedAttentionOps"/>, one (row, head) at a
/// time as GEMMs over the whole score matrix: S = scale·Q·Kᵀ (+ bias), a masked softmax per query, O = P·V; backward
/// dP = dO·Vᵀ, dS = P∘(dP − D)·scale, dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO. A causal op computes the masked half of S too:
/// BLAS does that faster than the per-pair dot products it replaced (those were 10–45% of a CPU step).
/// The score matrices live in per-thread buffers that grow to the largest Tq × Tk seen, so steady steps allocate nothing.
/// </summary>
internal static unsafe class HeadAttention
{
    /// <summary>
    /// Pointers to position 0 of row 0 (head 0); a tensor's positions are <c>…Stride</c> elements apart and its rows
    /// Tq (queries, out) or Tk (keys, values) positions apart; head h starts h·Hs elements into a position.
    /// Lse [B, H, Tq]; Bias [H, Tq, Tk] or null; KeyLengths [B] or null (all Tk keys).
    /// </summary>
    public struct Operands<T> where T : unmanaged
    {
        public T* Q, K, V, Out, Lse, Bias, Dq, Dk, Dv, Dout;
        public int* KeyLengths;
        public int QueryStride, KeyStride, ValueStride, OutStride;
        public int B, Tq, Tk, H, Hs;
        public bool Causal;
        public T Scale;
    }

    public static void Forward<T>(ref Operands<T> o) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var scores = Scratch<T>.Scores(o.Tq * o.Tk);
        for (int b = 0; b < o.B; b++)
        for (int h = 0; h < o.H; h++)
        {
            int keys = o.KeyLengths is null ? o.Tk : o.KeyLengths[b];
            var p = scores.AsSpan(0, o.Tq * keys);
            Scores(ref o, b, h, keys, p);
            for (int i = 0; i < o.Tq; i++)
            {
                var row = p.Slice(i * keys, keys);
                int visible = Visible(ref o, i, keys);
                var live = row[..visible];
                AddBias(ref o, h, i, live);
                T max = TensorPrimitives.Max<T>(live);
                TensorPrimitives.Subtract(live, max, live);
                TensorPrimitives.Exp(live, live);
                T sum = TensorPrimitives.Sum<T>(live);
                TensorPrimitives.Multiply(live, T.One / sum, live);
                row[visible..].Clear();
                o.Lse[((long)b * o.H + h) * o.Tq + i] = max + T.Log(sum);
            }
            CpuGemm.Gemm(false, false, o.Tq, o.Hs, keys, T.One, p, keys, Head(o.V, o.ValueStride, b, h, o.Tk, keys, ref o), o.ValueStride,
                T.Zero, Head(o.Out, o.OutStride, b, h, o.Tq, o.Tq, ref o), o.OutStride);
        }
    }

    public static void Backward<T>(ref Operands<T> o) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var scores = Scratch<T>.Scores(o.Tq * o.Tk);
        var gradients = Scratch<T>.Gradients(o.Tq * o.Tk);
        for (int b = 0; b < o.B; b++)
        for (int h = 0; h < o.H; h++)
        {
            int keys = o.KeyLengths is null ? o.Tk : o.KeyLengths[b];
            var p = scores.AsSpan(0, o.Tq * keys);
            var ds = gradients.AsSpan(0, o.Tq * keys);
            var q = Head(o.Q, o.QueryStride, b, h, o.Tq, o.Tq, ref o);
            var k = Head(o.K, o.KeyStride, b, h, o.Tk, keys, ref o);
            var dout = Head(o.Dout, o.OutStride, b, h, o.Tq, o.Tq, ref o);
            Scores(ref o, b, h, keys, p);
            CpuGemm.Gemm(false, true, o.Tq, keys, o.Hs, T.One, dout, o.OutStride, Head(o.V, o.ValueStride, b, h, o.Tk, keys, ref o), o.ValueStride, T.Zero, ds, keys);
            for (int i = 0; i < o.Tq; i++)
            {
                var row = p.Slice(i * keys, keys);
                var dRow = ds.Slice(i * keys, keys);
                int visible = Visible(ref o, i, keys);
                var live = row[..visible];
                AddBias(ref o, h, i, live);
                TensorPrimitives.Subtract(live, o.Lse[((long)b * o.H + h) * o.Tq + i], live);
                TensorPrimitives.Exp(live, live);
                row[visible..].Clear();
                // dS = P ∘ (dP − D)·scale with D_i = dO_i·O_i; masked keys have P = 0.
                T d = TensorPrimitives.Dot(dout.Slice(i * o.OutStride, o.Hs), Head(o.Out, o.OutStride, b, h, o.Tq, o.Tq, ref o).Slice(i * o.OutStride, o.Hs));
                TensorPrimitives.Subtract(dRow, d, dRow);
                TensorPrimitives.Multiply(dRow, row, dRow);
                TensorPrimitives.Multiply(dRow, o.Scale, dRow);
            }
            CpuGemm.Gemm(false, false, o.Tq, o.Hs, keys, T.One, ds, keys, k, o.KeyStride, T.Zero, Head(o.Dq, o.QueryStride, b, h, o.Tq, o.Tq, ref o), o.QueryStride);
            CpuGemm.Gemm(true, false, keys, o.Hs, o.Tq, T.One, ds, keys, q, o.QueryStride, T.Zero, Head(o.Dk, o.KeyStride, b, h, o.Tk, keys, ref o), o.KeyStride);
            CpuGemm.Gemm(true, false, keys, o.Hs, o.Tq, T.One, p, keys, dout, o.OutStride, T.Zero, Head(o.Dv, o.ValueStride, b, h, o.Tk, keys, ref o), o.ValueStride);
            for (int t = keys; t < o.Tk; t++) // keys no query of this row sees get zero gradient
            {
                Head(o.Dk, o.KeyStride, b, h, o.Tk, o.Tk, ref o).Slice(t * o.KeyStride, o.Hs).Clear();
                Head(o.Dv, o.ValueStride, b, h, o.Tk, o.Tk, ref o).Slice(t * o.ValueStride, o.Hs).Clear();
            }
        }
    }

    /// <summary>p [Tq, keys] = scale·Q·Kᵀ for row b, head h.</summary>
    private static void Scores<T>(ref Operands<T> o, int b, int h, int keys, Span<T> p) where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        CpuGemm.Gemm(false, true, o.Tq, keys, o.Hs, o.Scale, Head(o.Q, o.QueryStride, b, h, o.Tq, o.Tq, ref o), o.QueryStride,
            Head(o.K, o.KeyStride, b, h, o.Tk, keys, ref o), o.KeyStride, T.Zero, p, keys);

    /// <summary>Keys query i sees: the row's keys, and when causal only j ≤ i.</summary>
    private static int Visible<T>(ref Operands<T> o, int i, int keys) where T : unmanaged => o.Causal ? Math.Min(keys, i + 1) : keys;

    private static void AddBias<T>(ref Operands<T> o, int h, int i, Span<T> live) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (o.Bias is not null) TensorPrimitives.Add(live, new ReadOnlySpan<T>(o.Bias + ((long)h * o.Tq + i) * o.Tk, live.Length), live);
    }

    /// <summary>The first <paramref name="positions"/> positions of head h in row b of a tensor whose rows are <paramref name="rowPositions"/> long.</summary>
    private static Span<T> Head<T>(T* tensor, int stride, int b, int h, int rowPositions, int positions, ref Operands<T> o) where T : unmanaged =>
        positions == 0 ? default : new Span<T>(tensor + ((long)b * rowPositions) * stride + (long)h * o.Hs, (positions - 1) * stride + o.Hs);

    private static class Scratch<T> where T : unmanaged
    {
        [ThreadStatic] private static T[]? scores, gradients;

        public static T[] Scores(int length) => Grow(ref scores, length);
        public static T[] Gradients(int length) => Grow(ref gradients, length);

        private static T[] Grow(ref T[]? buffer, int length)
        {
            if (buffer is null || buffer.Length < length) buffer = new T[length];
            return buffer;
        }
    }
}

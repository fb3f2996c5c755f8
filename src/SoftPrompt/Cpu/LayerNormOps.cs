using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>LayerNorm over the last axis (GPT-2's ln_1, ln_2, ln_f).</summary>
public static unsafe class LayerNormOps
{
    /// <summary>
    /// x, y [N, C]; weight, bias [C]; saves mean [N] and rstd [N] = 1/sqrt(var + eps) (biased variance).
    /// y = (x − mean)·rstd·weight + bias.
    /// </summary>
    public static void Forward<T>(Span<T> y, Span<T> mean, Span<T> rstd, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, int rows, int channels, T epsilon)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Norm);
        Check(x.Length, y.Length, rows, channels);
        fixed (T* py = y) fixed (T* pm = mean) fixed (T* pr = rstd) fixed (T* px = x) fixed (T* pw = weight) fixed (T* pb = bias)
        {
            var job = new Job<T> { Y = py, Mean = pm, Rstd = pr, X = px, W = pw, B = pb, Rows = rows, C = channels, Eps = epsilon };
            job.Chunks = CpuParallel.ChunkCount(rows, Math.Max(1, 16384 / channels));
            CpuParallel.For(job.Chunks, &ForwardChunk<T>, &job);
        }
    }

    /// <summary>
    /// Input gradient only, added into dx (the residual stream's gradient, so the residual add is fused):
    /// dx += rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·weight, x̂ = (x − mean)·rstd.
    /// dy, x, dx [N, C]; weight [C]; mean, rstd [N] from the forward pass.
    /// </summary>
    public static void Backward<T>(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd, int rows, int channels)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Norm);
        Check(x.Length, dx.Length, rows, channels);
        Check(dy.Length, dx.Length, rows, channels);
        fixed (T* pdx = dx) fixed (T* pdy = dy) fixed (T* pm = mean) fixed (T* pr = rstd) fixed (T* px = x) fixed (T* pw = weight)
        {
            var job = new Job<T> { Y = pdy, Dx = pdx, Mean = pm, Rstd = pr, X = px, W = pw, Rows = rows, C = channels };
            job.Chunks = CpuParallel.ChunkCount(rows, Math.Max(1, 8192 / channels));
            CpuParallel.For(job.Chunks, &BackwardChunk<T>, &job);
        }
    }

    private static void Check(int a, int b, int rows, int channels)
    {
        if (a < rows * channels || b < rows * channels) throw new ArgumentException($"LayerNorm: buffers shorter than {rows}×{channels}.");
    }

    private struct Job<T> where T : unmanaged
    {
        public T* Y, Dx, Mean, Rstd, X, W, B;
        public int Rows, C, Chunks;
        public T Eps;
    }

    private static void ForwardChunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(j.Rows, j.Chunks, chunk);
        var w = new ReadOnlySpan<T>(j.W, j.C);
        var bias = new ReadOnlySpan<T>(j.B, j.C);
        T count = T.CreateChecked(j.C);
        for (int r = start; r < end; r++)
        {
            var x = new ReadOnlySpan<T>(j.X + (long)r * j.C, j.C);
            var y = new Span<T>(j.Y + (long)r * j.C, j.C);
            T m = TensorPrimitives.Sum(x) / count;
            TensorPrimitives.Subtract(x, m, y);
            T variance = TensorPrimitives.SumOfSquares<T>(y) / count;
            T s = T.One / T.Sqrt(variance + j.Eps);
            TensorPrimitives.Multiply(y, s, y);
            TensorPrimitives.FusedMultiplyAdd(y, w, bias, y);
            j.Mean[r] = m;
            j.Rstd[r] = s;
        }
    }

    private static void BackwardChunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(j.Rows, j.Chunks, chunk);
        T count = T.CreateChecked(j.C);
        for (int r = start; r < end; r++)
        {
            T m = j.Mean[r], s = j.Rstd[r];
            T* x = j.X + (long)r * j.C, dy = j.Y + (long)r * j.C, dx = j.Dx + (long)r * j.C;
            T sumG = T.Zero, sumGx = T.Zero;
            for (int c = 0; c < j.C; c++)
            {
                T g = dy[c] * j.W[c];
                sumG += g;
                sumGx += g * (x[c] - m) * s;
            }
            T meanG = sumG / count, meanGx = sumGx / count;
            for (int c = 0; c < j.C; c++)
            {
                T xhat = (x[c] - m) * s;
                dx[c] += s * (dy[c] * j.W[c] - meanG - xhat * meanGx);
            }
        }
    }
}

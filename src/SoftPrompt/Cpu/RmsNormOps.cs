using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>RMS norm over the last axis without mean or bias (T5's "T5LayerNorm", Llama's RMSNorm).</summary>
public static unsafe class RmsNormOps
{
    /// <summary>
    /// x, y [N, C]; weight [C]; saves rstd [N] = 1/sqrt(mean(x²) + eps). y = x·rstd·weight. y may alias x.
    /// </summary>
    public static void Forward<T>(Span<T> y, Span<T> rstd, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, int rows, int channels, T epsilon)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Norm);
        Check(x.Length, y.Length, rstd.Length, weight.Length, rows, channels);
        fixed (T* py = y) fixed (T* pr = rstd) fixed (T* px = x) fixed (T* pw = weight)
        {
            var job = new Job<T> { Y = py, Rstd = pr, X = px, W = pw, Rows = rows, C = channels, Eps = epsilon };
            job.Chunks = CpuParallel.ChunkCount(rows, Math.Max(1, 16384 / channels));
            CpuParallel.For(job.Chunks, &ForwardChunk<T>, &job);
        }
    }

    /// <summary>
    /// Input gradient only, added into dx (the residual stream's gradient, so the residual add is fused):
    /// dx += rstd·(g − x̂·mean(g·x̂)) with g = dy·weight, x̂ = x·rstd. dy, x, dx [N, C]; weight [C]; rstd [N] from the forward.
    /// </summary>
    public static void Backward<T>(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> rstd, int rows, int channels)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Norm);
        Check(x.Length, dx.Length, rstd.Length, weight.Length, rows, channels);
        Check(dy.Length, dx.Length, rstd.Length, weight.Length, rows, channels);
        fixed (T* pdx = dx) fixed (T* pdy = dy) fixed (T* pr = rstd) fixed (T* px = x) fixed (T* pw = weight)
        {
            var job = new Job<T> { Y = pdy, Dx = pdx, Rstd = pr, X = px, W = pw, Rows = rows, C = channels };
            job.Chunks = CpuParallel.ChunkCount(rows, Math.Max(1, 8192 / channels));
            CpuParallel.For(job.Chunks, &BackwardChunk<T>, &job);
        }
    }

    private static void Check(int a, int b, int rstdLength, int weightLength, int rows, int channels)
    {
        long n = (long)rows * channels;
        if (a < n || b < n || rstdLength < rows || weightLength < channels)
            throw new ArgumentException($"RMS norm: buffers shorter than {rows}×{channels} (rstd {rows}, weight {channels}).");
    }

    private struct Job<T> where T : unmanaged
    {
        public T* Y, Dx, Rstd, X, W;
        public int Rows, C, Chunks;
        public T Eps;
    }

    private static void ForwardChunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(j.Rows, j.Chunks, chunk);
        var w = new ReadOnlySpan<T>(j.W, j.C);
        T count = T.CreateChecked(j.C);
        for (int r = start; r < end; r++)
        {
            var x = new ReadOnlySpan<T>(j.X + (long)r * j.C, j.C);
            var y = new Span<T>(j.Y + (long)r * j.C, j.C);
            T s = T.One / T.Sqrt(TensorPrimitives.SumOfSquares(x) / count + j.Eps);
            TensorPrimitives.Multiply(x, s, y);
            TensorPrimitives.Multiply(y, w, y);
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
            T s = j.Rstd[r];
            T* x = j.X + (long)r * j.C, dy = j.Y + (long)r * j.C, dx = j.Dx + (long)r * j.C;
            T sumGx = T.Zero;
            for (int c = 0; c < j.C; c++) sumGx += dy[c] * j.W[c] * x[c] * s;
            T meanGx = sumGx / count;
            for (int c = 0; c < j.C; c++) dx[c] += s * (dy[c] * j.W[c] - x[c] * s * meanGx);
        }
    }
}

using System.Numerics.Tensors;

namespace SoftPrompt.Cuda.Emulation;

/// <summary>
/// The emulated device's GEMM: row-major fp32 C = alpha·op(A)·op(B) + beta·C over host memory, strided-batched,
/// with cuBLAS's conventions (beta = 0 never reads C, so NaN there does not propagate; k = 0 scales C by beta).
/// Operands are validated with the same rules as the GPU path. One output row per work item, fp32 accumulation.
/// </summary>
internal static unsafe class CpuGemm
{
    [ThreadStatic] private static float[]? scratch;

    public static void Run(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), $"GEMM sizes must not be negative (m={m}, n={n}, k={k}).");
        if (batchCount < 1) throw new ArgumentOutOfRangeException(nameof(batchCount), $"GEMM batch count {batchCount} must be at least 1.");
        if (c.Transposed) throw new ArgumentException("GEMM output c cannot be transposed: write C row-major and transpose an input instead.", nameof(c));
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        Validate("a", a, aRows, aCols, batchCount, m, n, k);
        Validate("b", b, bRows, bCols, batchCount, m, n, k);
        Validate("c", c, m, n, batchCount, m, n, k);
        if (batchCount > 1 && m > 0 && n > 0 && c.BatchStride < (long)(m - 1) * c.LeadingDimension + n)
            throw new ArgumentException(
                $"GEMM output c: batch stride {c.BatchStride} makes the {batchCount} outputs of [{m}, {n}] (ld {c.LeadingDimension}) overlap.", nameof(c));
        if (m == 0 || n == 0) return;

        var job = new Job(m, n, k, alpha, beta, a, b, c);
        long rows = (long)m * batchCount;
        if ((double)rows * n * Math.Max(k, 1) < 1 << 18)
            for (long r = 0; r < rows; r++) job.Row(r);
        else
            Parallel.For(0L, rows, job.Row);
    }

    private sealed class Job(int m, int n, int k, float alpha, float beta, GemmOperand a, GemmOperand b, GemmOperand c)
    {
        public void Row(long row)
        {
            long batch = row / m;
            int i = (int)(row % m);
            float* aBase = (float*)a.Data.Address + batch * a.BatchStride;
            float* bBase = (float*)b.Data.Address + batch * b.BatchStride;
            float* cRow = (float*)c.Data.Address + batch * c.BatchStride + (long)i * c.LeadingDimension;

            float[] buffer = scratch is { } s && s.Length >= n + k ? s : (scratch = new float[Math.Max(n + k, 1024)]);
            Span<float> acc = buffer.AsSpan(0, n);
            Span<float> aCopy = buffer.AsSpan(n, k);
            // Row i of op(A), contiguous.
            ReadOnlySpan<float> aRow;
            if (!a.Transposed)
            {
                aRow = new ReadOnlySpan<float>(aBase + (long)i * a.LeadingDimension, k);
            }
            else
            {
                for (int p = 0; p < k; p++) aCopy[p] = aBase[(long)p * a.LeadingDimension + i];
                aRow = aCopy;
            }

            if (!b.Transposed)
            {
                // acc = Σ_p A[i, p] · B[p, :]  (rows of B are contiguous)
                acc.Clear();
                for (int p = 0; p < k; p++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(bBase + (long)p * b.LeadingDimension, n), aRow[p], acc, acc);
            }
            else
            {
                // acc[j] = A[i, :] · Bstored[j, :]  (op(B) = Bstoredᵀ)
                for (int j = 0; j < n; j++)
                    acc[j] = TensorPrimitives.Dot(aRow, new ReadOnlySpan<float>(bBase + (long)j * b.LeadingDimension, k));
            }

            if (beta == 0f)
                for (int j = 0; j < n; j++) cRow[j] = alpha * acc[j];
            else
                for (int j = 0; j < n; j++) cRow[j] = alpha * acc[j] + beta * cRow[j];
        }
    }

    private static void Validate(string name, GemmOperand x, int rows, int cols, int batchCount, int m, int n, int k)
    {
        string shape = $"[{rows}, {cols}]{(x.Transposed ? " (transposed)" : "")} of a GEMM with m={m}, n={n}, k={k}";
        if (x.LeadingDimension < Math.Max(1, cols))
            throw new ArgumentException($"GEMM operand {name}: leading dimension {x.LeadingDimension} is less than the {cols} columns of its stored {shape}.", name);
        if (x.BatchStride < 0)
            throw new ArgumentException($"GEMM operand {name}: negative batch stride {x.BatchStride}.", name);
        if (rows == 0 || cols == 0) return;
        long needed = (long)(batchCount - 1) * x.BatchStride + (long)(rows - 1) * x.LeadingDimension + cols;
        if (needed > x.Data.Length)
            throw new ArgumentException(
                $"GEMM operand {name}: {batchCount} × {shape} with ld {x.LeadingDimension} and batch stride {x.BatchStride} reaches element {needed}, " +
                $"but its span holds {x.Data.Length}.", name);
    }
}

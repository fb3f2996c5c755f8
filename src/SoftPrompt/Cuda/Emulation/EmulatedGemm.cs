namespace SoftPrompt.Cuda.Emulation;

/// <summary>
/// The emulated device's GEMM: row-major fp32 C = alpha·op(A)·op(B) + beta·C over host memory, strided-batched,
/// with cuBLAS's conventions (beta = 0 never reads C, so NaN there does not propagate; k = 0 scales C by beta).
/// Operands are validated with the same rules as the GPU path; the arithmetic is the CPU engine's GEMM (OpenBLAS when present).
/// </summary>
internal static unsafe class EmulatedGemm
{
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

        for (int batch = 0; batch < batchCount; batch++)
            Cpu.CpuGemm.Gemm<float>(a.Transposed, b.Transposed, m, n, k, alpha, View(a, batch, aRows, aCols), a.LeadingDimension,
                View(b, batch, bRows, bCols), b.LeadingDimension, beta, View(c, batch, m, n), c.LeadingDimension);
    }

    /// <summary>One batch entry of an operand as a host span (emulated device memory is host memory).</summary>
    private static Span<float> View(GemmOperand x, int batch, int rows, int cols)
    {
        if (rows == 0 || cols == 0) return [];
        long length = (long)(rows - 1) * x.LeadingDimension + cols;
        return new Span<float>((float*)x.Data.Address + batch * x.BatchStride, checked((int)length));
    }

    private static void Validate(string name, GemmOperand x, int rows, int cols, int batchCount, int m, int n, int k)
    {
        if (x.LeadingDimension < Math.Max(1, cols))
            throw new ArgumentException($"GEMM operand {name}: leading dimension {x.LeadingDimension} is less than the {cols} columns of its stored {Shape(x, rows, cols, m, n, k)}.", name);
        if (x.BatchStride < 0)
            throw new ArgumentException($"GEMM operand {name}: negative batch stride {x.BatchStride}.", name);
        if (rows == 0 || cols == 0) return;
        long needed = (long)(batchCount - 1) * x.BatchStride + (long)(rows - 1) * x.LeadingDimension + cols;
        if (needed > x.Data.Length)
            throw new ArgumentException(
                $"GEMM operand {name}: {batchCount} × {Shape(x, rows, cols, m, n, k)} with ld {x.LeadingDimension} and batch stride {x.BatchStride} reaches element {needed}, " +
                $"but its span holds {x.Data.Length}.", name);
    }

    // Only formatted on failure: a GEMM call must not allocate.
    private static string Shape(GemmOperand x, int rows, int cols, int m, int n, int k) =>
        $"[{rows}, {cols}]{(x.Transposed ? " (transposed)" : "")} of a GEMM with m={m}, n={n}, k={k}";
}

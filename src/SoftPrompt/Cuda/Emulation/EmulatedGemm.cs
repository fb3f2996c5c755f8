namespace SoftPrompt.Cuda.Emulation;

/// <summary>
/// The emulated device's GEMM: row-major C = alpha·op(A)·op(B) + beta·C over host memory, strided-batched, with cuBLAS's
/// conventions (beta = 0 never reads C, so NaN there does not propagate; k = 0 scales C by beta). fp32 operands, or bf16
/// A and B widened exactly to fp32 first (a bf16 product is exact in fp32, and cuBLAS's tensor cores sum in fp32 too),
/// into an fp32 C or a bf16 C (widened when beta ≠ 0, each output rounded once at the end).
/// Operands are validated with the same rules as the GPU path; the arithmetic is the CPU engine's GEMM (OpenBLAS when present).
/// </summary>
internal static unsafe class EmulatedGemm
{
    /// <summary>An operand's layout with its element type erased, for the checks.</summary>
    private readonly record struct Layout(long Length, int LeadingDimension, bool Transposed, long BatchStride);

    // The widened copies of bf16 operands, grown to the largest seen (per thread: tests may run devices in parallel).
    [ThreadStatic] private static float[]? wideA, wideB, wideC;

    public static void Run(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount)
    {
        if (!Check(m, n, k, Of(a), Of(b), Of(c), batchCount)) return;
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        for (int batch = 0; batch < batchCount; batch++)
            Cpu.CpuGemm.Gemm<float>(a.Transposed, b.Transposed, m, n, k, alpha, View((float*)a.Data.Address, a.LeadingDimension, a.BatchStride, batch, aRows, aCols), a.LeadingDimension,
                View((float*)b.Data.Address, b.LeadingDimension, b.BatchStride, batch, bRows, bCols), b.LeadingDimension, beta,
                View((float*)c.Data.Address, c.LeadingDimension, c.BatchStride, batch, m, n), c.LeadingDimension);
    }

    public static void RunBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, int batchCount)
    {
        var (la, lb) = (Of(a), Of(b));
        if (!Check(m, n, k, la, lb, Of(c), batchCount)) return;
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        fixed (float* pa = Widen(a.Data, Reach(la, batchCount, aRows, aCols), ref wideA), pb = Widen(b.Data, Reach(lb, batchCount, bRows, bCols), ref wideB))
            for (int batch = 0; batch < batchCount; batch++)
                Cpu.CpuGemm.Gemm<float>(a.Transposed, b.Transposed, m, n, k, alpha, View(pa, a.LeadingDimension, a.BatchStride, batch, aRows, aCols), a.LeadingDimension,
                    View(pb, b.LeadingDimension, b.BatchStride, batch, bRows, bCols), b.LeadingDimension, beta,
                    View((float*)c.Data.Address, c.LeadingDimension, c.BatchStride, batch, m, n), c.LeadingDimension);
    }

    /// <summary>
    /// bf16 C: the fp32 GEMM on widened copies of A, B and (when beta ≠ 0) C, then each output rounded once to nearest even,
    /// as cuBLAS's CUBLAS_COMPUTE_32F with a CUDA_R_16BF C does. Only the m×n outputs are written back (row padding keeps its bits).
    /// </summary>
    public static void RunBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, int batchCount)
    {
        var (la, lb, lc) = (Of(a), Of(b), Of(c));
        if (!Check(m, n, k, la, lb, lc, batchCount)) return;
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        long cReach = Reach(lc, batchCount, m, n);
        var cWide = beta != 0 ? Widen(c.Data, cReach, ref wideC) : Room(cReach, ref wideC);
        fixed (float* pa = Widen(a.Data, Reach(la, batchCount, aRows, aCols), ref wideA), pb = Widen(b.Data, Reach(lb, batchCount, bRows, bCols), ref wideB), pc = cWide)
            for (int batch = 0; batch < batchCount; batch++)
            {
                var cBatch = View(pc, c.LeadingDimension, c.BatchStride, batch, m, n);
                Cpu.CpuGemm.Gemm<float>(a.Transposed, b.Transposed, m, n, k, alpha, View(pa, a.LeadingDimension, a.BatchStride, batch, aRows, aCols), a.LeadingDimension,
                    View(pb, b.LeadingDimension, b.BatchStride, batch, bRows, bCols), b.LeadingDimension, beta, cBatch, c.LeadingDimension);
                var cBits = new Span<ushort>((ushort*)c.Data.Address + batch * c.BatchStride, cBatch.Length);
                for (int row = 0; row < m; row++)
                {
                    int start = row * c.LeadingDimension;
                    Checkpoints.ElementConversion.SingleToBFloat16(cBatch.Slice(start, n), cBits.Slice(start, n));
                }
            }
    }

    private static Layout Of(GemmOperand x) => new(x.Data.Length, x.LeadingDimension, x.Transposed, x.BatchStride);
    private static Layout Of(Bf16GemmOperand x) => new(x.Data.Length, x.LeadingDimension, x.Transposed, x.BatchStride);

    /// <summary>Validates the call as cuBLAS would; false when C is empty (nothing to compute).</summary>
    private static bool Check(int m, int n, int k, Layout a, Layout b, Layout c, int batchCount)
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
        return m > 0 && n > 0;
    }

    /// <summary>Elements an operand's batches reach from its start.</summary>
    private static long Reach(Layout x, int batchCount, int rows, int cols) =>
        rows == 0 || cols == 0 ? 0 : (long)(batchCount - 1) * x.BatchStride + (long)(rows - 1) * x.LeadingDimension + cols;

    private static float[] Room(long count, ref float[]? buffer)
    {
        if (buffer is null || buffer.Length < count) buffer = new float[checked((int)count)];
        return buffer;
    }

    private static float[] Widen(DeviceSpan<ushort> data, long count, ref float[]? buffer)
    {
        var wide = Room(count, ref buffer);
        var bits = new ReadOnlySpan<ushort>((ushort*)data.Address, (int)count);
        Checkpoints.ElementConversion.BFloat16ToSingle(bits, wide.AsSpan(0, (int)count));
        return wide;
    }

    /// <summary>One batch entry of an operand as a host span (emulated device memory is host memory).</summary>
    private static Span<float> View(float* start, int leadingDimension, long batchStride, int batch, int rows, int cols)
    {
        if (rows == 0 || cols == 0) return [];
        long length = (long)(rows - 1) * leadingDimension + cols;
        return new Span<float>(start + batch * batchStride, checked((int)length));
    }

    private static void Validate(string name, Layout x, int rows, int cols, int batchCount, int m, int n, int k)
    {
        if (x.LeadingDimension < Math.Max(1, cols))
            throw new ArgumentException($"GEMM operand {name}: leading dimension {x.LeadingDimension} is less than the {cols} columns of its stored {Shape(x, rows, cols, m, n, k)}.", name);
        if (x.BatchStride < 0)
            throw new ArgumentException($"GEMM operand {name}: negative batch stride {x.BatchStride}.", name);
        if (rows == 0 || cols == 0) return;
        long needed = (long)(batchCount - 1) * x.BatchStride + (long)(rows - 1) * x.LeadingDimension + cols;
        if (needed > x.Length)
            throw new ArgumentException(
                $"GEMM operand {name}: {batchCount} × {Shape(x, rows, cols, m, n, k)} with ld {x.LeadingDimension} and batch stride {x.BatchStride} reaches element {needed}, " +
                $"but its span holds {x.Length}.", name);
    }

    // Only formatted on failure: a GEMM call must not allocate.
    private static string Shape(Layout x, int rows, int cols, int m, int n, int k) =>
        $"[{rows}, {cols}]{(x.Transposed ? " (transposed)" : "")} of a GEMM with m={m}, n={n}, k={k}";
}

using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

/// <summary>A row-major GEMM operand with the element type erased: address in bytes, length/ld/stride in elements.</summary>
internal readonly record struct RowMajorMatrix(ulong Address, long Length, int LeadingDimension, bool Transposed, long BatchStride);

/// <summary>The arguments of one column-major cuBLAS GEMM call (sgemm / gemmEx, strided-batched when BatchCount &gt; 1).</summary>
internal readonly record struct ColumnMajorGemm(
    CublasOperation TransA, CublasOperation TransB, int M, int N, int K,
    ulong A, int Lda, long StrideA,
    ulong B, int Ldb, long StrideB,
    ulong C, int Ldc, long StrideC,
    int BatchCount)
{
    /// <summary>Nothing to compute (an empty C).</summary>
    public bool IsEmpty => M == 0 || N == 0;
}

/// <summary>
/// The one place where our row-major GEMMs meet cuBLAS's column-major convention. A row-major matrix with leading
/// dimension ld is, byte for byte, its transpose stored column-major with the same ld. So C = op(A)·op(B) in row-major
/// is Cᵀ = op(B)ᵀ·op(A)ᵀ in column-major: swap the operands, swap m and n, keep each operand's own transpose flag.
/// </summary>
internal static class GemmMapping
{
    public static ColumnMajorGemm ToColumnMajor(int m, int n, int k, RowMajorMatrix a, RowMajorMatrix b, RowMajorMatrix c, int batchCount)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), $"GEMM sizes must not be negative (m={m}, n={n}, k={k}).");
        if (batchCount < 1) throw new ArgumentOutOfRangeException(nameof(batchCount), $"GEMM batch count {batchCount} must be at least 1.");
        if (c.Transposed) throw new ArgumentException("GEMM output c cannot be transposed: write C row-major and transpose an input instead.", nameof(c));

        // Stored shapes (rows × columns) of each row-major operand.
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        Validate("a", a, aRows, aCols, batchCount, m, n, k);
        Validate("b", b, bRows, bCols, batchCount, m, n, k);
        Validate("c", c, m, n, batchCount, m, n, k);
        if (batchCount > 1 && m > 0 && n > 0 && c.BatchStride < (long)(m - 1) * c.LeadingDimension + n)
            throw new ArgumentException(
                $"GEMM output c: batch stride {c.BatchStride} makes the {batchCount} outputs of [{m}, {n}] (ld {c.LeadingDimension}) overlap.", nameof(c));

        return new ColumnMajorGemm(
            TransA: b.Transposed ? CublasOperation.T : CublasOperation.N,
            TransB: a.Transposed ? CublasOperation.T : CublasOperation.N,
            M: n, N: m, K: k,
            A: b.Address, Lda: b.LeadingDimension, StrideA: b.BatchStride,
            B: a.Address, Ldb: a.LeadingDimension, StrideB: a.BatchStride,
            C: c.Address, Ldc: c.LeadingDimension, StrideC: c.BatchStride,
            BatchCount: batchCount);
    }

    /// <summary>
    /// Validates a GEMM with an epilogue (D = epilogue(alpha·op(A)·op(B) + beta·C), one batch) and maps it like
    /// <see cref="ToColumnMajor(int, int, int, RowMajorMatrix, RowMajorMatrix, RowMajorMatrix, int)"/>: the mapped C is
    /// <paramref name="c"/> when beta ≠ 0, else D (cuBLASLt then reads no C). cuBLASLt's bias runs along the column-major
    /// rows, which are our row-major columns: one bias element per output column. Aux is row-major [m, n] with its own ld.
    /// </summary>
    /// <param name="abElementSize">Bytes per element of A and B; <paramref name="dElementSize"/> of C, D and aux. D and aux may not overlap A or B (the GPU reads those while writing them), nor each other.</param>
    public static ColumnMajorGemm ToColumnMajor(int m, int n, int k, RowMajorMatrix a, RowMajorMatrix b, float beta, RowMajorMatrix c, RowMajorMatrix d,
        GemmEpilogueKind epilogue, long biasLength, RowMajorMatrix aux, int abElementSize, int dElementSize)
    {
        if (d.Transposed) throw new ArgumentException("GEMM output d cannot be transposed: write D row-major and transpose an input instead.", nameof(d));
        if (beta != 0)
        {
            if (c.Transposed) throw new ArgumentException("GEMM input c cannot be transposed: cuBLASLt reads C with D's layout.", nameof(c));
            if (c.LeadingDimension != d.LeadingDimension)
                throw new ArgumentException($"GEMM input c has leading dimension {c.LeadingDimension}, output d {d.LeadingDimension}: cuBLASLt reads C with D's layout, make them equal.", nameof(c));
            Validate("c", c, m, n, 1, m, n, k);
        }
        bool hasBias = epilogue.HasBias(), hasAux = epilogue.HasAux();
        if (hasBias && biasLength < n)
            throw new ArgumentException($"GEMM epilogue {epilogue}: the bias holds {biasLength} elements, the output d has {n} columns (m={m}, n={n}, k={k}).", "bias");
        if (hasAux)
        {
            if (aux.LeadingDimension % 8 != 0)
                throw new ArgumentException($"GEMM epilogue {epilogue}: aux leading dimension {aux.LeadingDimension} is not a multiple of 8, as cuBLASLt requires (pad its rows to {(aux.LeadingDimension + 7) / 8 * 8}).", "aux");
            Validate("aux", aux, m, n, 1, m, n, k);
        }
        var g = ToColumnMajor(m, n, k, a, b, d, 1);
        if (g.IsEmpty) return g;
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        var ra = Bytes(a, aRows, aCols, abElementSize);
        var rb = Bytes(b, bRows, bCols, abElementSize);
        var rd = Bytes(d, m, n, dElementSize);
        RejectOverlap("d", rd, "a", ra, m, n, k);
        RejectOverlap("d", rd, "b", rb, m, n, k);
        if (epilogue == GemmEpilogueKind.GeluAuxBias)
        {
            var raux = Bytes(aux, m, n, dElementSize);
            RejectOverlap("aux", raux, "a", ra, m, n, k);
            RejectOverlap("aux", raux, "b", rb, m, n, k);
            RejectOverlap("aux", raux, "d", rd, m, n, k);
        }
        return beta != 0 ? g with { C = c.Address } : g;
    }

    private static (ulong Start, ulong End) Bytes(RowMajorMatrix x, int rows, int cols, int size) =>
        rows == 0 || cols == 0 ? (0, 0) : (x.Address, x.Address + (ulong)(((long)(rows - 1) * x.LeadingDimension + cols) * size));

    private static void RejectOverlap(string output, (ulong Start, ulong End) o, string input, (ulong Start, ulong End) i, int m, int n, int k)
    {
        if (o.Start < i.End && i.Start < o.End)
            throw new ArgumentException($"GEMM {output} overlaps {input} (m={m}, n={n}, k={k}): the GPU reads {input} while it writes {output}; give {output} memory of its own.", output);
    }

    // Called on every GEMM: builds no string unless it throws.
    private static void Validate(string name, RowMajorMatrix x, int rows, int cols, int batchCount, int m, int n, int k)
    {
        if (x.LeadingDimension < Math.Max(1, cols))
            throw new ArgumentException($"GEMM operand {name}: leading dimension {x.LeadingDimension} is less than the {cols} columns of its stored {Shape(x, rows, cols, m, n, k)}.", name);
        if (x.BatchStride < 0)
            throw new ArgumentException($"GEMM operand {name}: negative batch stride {x.BatchStride}.", name);
        if (rows == 0 || cols == 0) return;
        long needed = (long)(batchCount - 1) * x.BatchStride + (long)(rows - 1) * x.LeadingDimension + cols;
        if (needed > x.Length)
            throw new ArgumentException(
                $"GEMM operand {name}: {batchCount} × {Shape(x, rows, cols, m, n, k)} with ld {x.LeadingDimension} and batch stride {x.BatchStride} " +
                $"reaches element {needed}, but its span holds {x.Length}.", name);
    }

    private static string Shape(RowMajorMatrix x, int rows, int cols, int m, int n, int k) =>
        $"[{rows}, {cols}]{(x.Transposed ? " (transposed)" : "")} of a GEMM with m={m}, n={n}, k={k}";
}

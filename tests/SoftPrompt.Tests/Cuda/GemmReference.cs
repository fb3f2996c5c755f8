namespace SoftPrompt.Tests.Cuda;

/// <summary>Plain CPU GEMMs with double accumulation, the yardsticks for the GEMM mapping and the GPU.</summary>
internal static class GemmReference
{
    /// <summary>
    /// Column-major BLAS sgemm over one flat memory: element (r, c) of a column-major matrix at offset o with
    /// leading dimension ld is memory[o + r + c·ld]. op = transpose when the flag is set. Batched by element strides.
    /// </summary>
    public static void ColumnMajorSgemm(float[] memory, bool transA, bool transB, int m, int n, int k, float alpha,
        long a, int lda, long strideA, long b, int ldb, long strideB, float beta, long c, int ldc, long strideC, int batchCount)
    {
        for (int batch = 0; batch < batchCount; batch++)
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0;
            for (int p = 0; p < k; p++)
            {
                // op(A)[i, p] and op(B)[p, j]
                float av = transA ? memory[a + batch * strideA + p + (long)i * lda] : memory[a + batch * strideA + i + (long)p * lda];
                float bv = transB ? memory[b + batch * strideB + j + (long)p * ldb] : memory[b + batch * strideB + p + (long)j * ldb];
                sum += (double)av * bv;
            }
            long at = c + batch * strideC + i + (long)j * ldc;
            memory[at] = (float)(alpha * sum + (beta == 0 ? 0 : beta * (double)memory[at]));
        }
    }

    /// <summary>Row-major C[m, n] = alpha·op(A)·op(B) + beta·C, element (r, c) of a row-major matrix at r·ld + c.</summary>
    public static void RowMajor(int m, int n, int k, float alpha, float[] a, int lda, bool transA, long strideA,
        float[] b, int ldb, bool transB, long strideB, float beta, float[] c, int ldc, long strideC, int batchCount)
    {
        for (int batch = 0; batch < batchCount; batch++)
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0;
            for (int p = 0; p < k; p++)
            {
                float av = transA ? a[batch * strideA + (long)p * lda + i] : a[batch * strideA + (long)i * lda + p];
                float bv = transB ? b[batch * strideB + (long)j * ldb + p] : b[batch * strideB + (long)p * ldb + j];
                sum += (double)av * bv;
            }
            long at = batch * strideC + (long)i * ldc + j;
            c[at] = (float)(alpha * sum + (beta == 0 ? 0 : beta * (double)c[at]));
        }
    }

    public static float[] Random(Random random, long length)
    {
        var values = new float[length];
        for (long i = 0; i < length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    /// <summary>fp32 → bfloat16 bits, round to nearest even (what __float2bfloat16 does for finite values).</summary>
    public static ushort ToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    public static float FromBf16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}

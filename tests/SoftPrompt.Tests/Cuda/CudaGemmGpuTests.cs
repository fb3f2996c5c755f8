using SoftPrompt.Cuda;

namespace SoftPrompt.Tests.Cuda;

/// <summary>cuBLAS GEMMs through <see cref="CudaDevice"/> against the CPU reference. Skipped without a GPU.</summary>
[Category("Gpu")]
public sealed class CudaGemmGpuTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        int[][] shapes = [[1, 1, 1], [3, 5, 7], [17, 33, 65], [64, 1, 128], [1, 100, 3], [129, 65, 257]];
        foreach (var s in shapes)
        foreach (bool ta in new[] { false, true })
        foreach (bool tb in new[] { false, true })
        foreach (int batch in new[] { 1, 4 })
            yield return new TestCaseData(s[0], s[1], s[2], ta, tb, batch).SetName($"GpuGemm m={s[0]} n={s[1]} k={s[2]} tA={ta} tB={tb} batch={batch}");
    }

    [TestCaseSource(nameof(Cases))]
    public void Fp32GemmMatchesTheCpu(int m, int n, int k, bool transA, bool transB, int batch)
    {
        var gpu = GpuTestEnvironment.RequireCuda();
        var p = Problem.Create(m, n, k, transA, transB, batch, seed: m + 7 * n + 31 * k + batch);
        using var a = Upload(gpu, p.A);
        using var b = Upload(gpu, p.B);
        using var c = Upload(gpu, p.C);
        gpu.Gemm(m, n, k, p.Alpha, new GemmOperand(a.Span, p.Lda, transA, p.StrideA), new GemmOperand(b.Span, p.Ldb, transB, p.StrideB),
            p.Beta, new GemmOperand(c.Span, p.Ldc, false, p.StrideC), batch);
        var expected = p.Expected(p.A, p.B);
        var actual = new float[p.C.Length];
        c.CopyTo(actual);
        // The whole buffer: padding between rows and batches must come back untouched.
        Assert.That(actual, Is.EqualTo(expected).Within(2e-4f));
    }

    [Test]
    public void SharesOneWeightAcrossTheBatchWithZeroStride()
    {
        var gpu = GpuTestEnvironment.RequireCuda();
        const int m = 9, n = 12, k = 20, batch = 3;
        var random = new Random(5);
        float[] a = GemmReference.Random(random, batch * m * k), w = GemmReference.Random(random, n * k);
        using var da = Upload(gpu, a);
        using var dw = Upload(gpu, w);
        using var dc = gpu.Allocate<float>(batch * m * n);
        // x · Wᵀ with W stored [n, k] as in a linear layer.
        gpu.Gemm(m, n, k, 1, new GemmOperand(da.Span, k, false, m * k), new GemmOperand(dw.Span, k, true, 0), 0, new GemmOperand(dc.Span, n, false, m * n), batch);
        var expected = new float[batch * m * n];
        GemmReference.RowMajor(m, n, k, 1, a, k, false, m * k, w, k, true, 0, 0, expected, n, m * n, batch);
        var actual = new float[expected.Length];
        dc.CopyTo(actual);
        Assert.That(actual, Is.EqualTo(expected).Within(1e-4f));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Bf16GemmAccumulatesInFp32(bool bf16Output)
    {
        var gpu = GpuTestEnvironment.RequireCuda();
        if (gpu.ComputeCapability.Major < 8) Assert.Ignore($"bf16 GEMMs need compute capability 8.0; this GPU is {gpu.ComputeCapability}");
        foreach (int batch in new[] { 1, 2 })
        {
            var p = Problem.Create(33, 47, 130, transA: false, transB: true, batch, seed: 11);
            // The reference sees exactly the bf16-rounded inputs the GPU sees.
            var a16 = p.A.Select(GemmReference.ToBf16).ToArray();
            var b16 = p.B.Select(GemmReference.ToBf16).ToArray();
            var expected = p.Expected(a16.Select(GemmReference.FromBf16).ToArray(), b16.Select(GemmReference.FromBf16).ToArray(), beta: 0);
            using var a = Upload(gpu, a16);
            using var b = Upload(gpu, b16);
            var actual = new float[p.C.Length];
            if (bf16Output)
            {
                using var c = gpu.Allocate<ushort>(p.C.Length);
                gpu.GemmBf16(p.M, p.N, p.K, p.Alpha, new Bf16GemmOperand(a.Span, p.Lda, false, p.StrideA), new Bf16GemmOperand(b.Span, p.Ldb, true, p.StrideB),
                    0, new Bf16GemmOperand(c.Span, p.Ldc, false, p.StrideC), batch);
                var raw = new ushort[p.C.Length];
                c.CopyTo(raw);
                actual = raw.Select(GemmReference.FromBf16).ToArray();
                // Padding between rows was never written: compare only the written elements (output rounded once to bf16).
                ForEachOutput(p, i => Assert.That(actual[i], Is.EqualTo(expected[i]).Within(Math.Abs(expected[i]) / 128 + 1e-3f), $"element {i}"));
            }
            else
            {
                using var c = gpu.Allocate<float>(p.C.Length);
                gpu.GemmBf16(p.M, p.N, p.K, p.Alpha, new Bf16GemmOperand(a.Span, p.Lda, false, p.StrideA), new Bf16GemmOperand(b.Span, p.Ldb, true, p.StrideB),
                    0, new GemmOperand(c.Span, p.Ldc, false, p.StrideC), batch);
                c.CopyTo(actual);
                ForEachOutput(p, i => Assert.That(actual[i], Is.EqualTo(expected[i]).Within(1e-3f), $"element {i}"));
            }
        }
    }

    [Test]
    public void Tf32IsOffUntilAskedFor()
    {
        var gpu = GpuTestEnvironment.RequireCuda();
        Assert.That(gpu.AllowTf32, Is.False);
        var p = Problem.Create(256, 256, 512, false, false, 1, seed: 2);
        using var a = Upload(gpu, p.A);
        using var b = Upload(gpu, p.B);
        using var c = gpu.Allocate<float>(p.C.Length);
        var expected = p.Expected(p.A, p.B, beta: 0);
        var actual = new float[p.C.Length];
        try
        {
            gpu.AllowTf32 = true;
            gpu.Gemm(p.M, p.N, p.K, p.Alpha, new GemmOperand(a.Span, p.Lda), new GemmOperand(b.Span, p.Ldb), 0, new GemmOperand(c.Span, p.Ldc));
            c.CopyTo(actual);
            ForEachOutput(p, i => Assert.That(actual[i], Is.EqualTo(expected[i]).Within(5e-2f), $"element {i}"));
        }
        finally
        {
            gpu.AllowTf32 = false;
        }
        gpu.Gemm(p.M, p.N, p.K, p.Alpha, new GemmOperand(a.Span, p.Lda), new GemmOperand(b.Span, p.Ldb), 0, new GemmOperand(c.Span, p.Ldc));
        c.CopyTo(actual);
        ForEachOutput(p, i => Assert.That(actual[i], Is.EqualTo(expected[i]).Within(2e-4f), $"element {i}"));
    }

    [Test]
    public void ShapeErrorsAreCaughtBeforeCublas()
    {
        var gpu = GpuTestEnvironment.RequireCuda();
        using var a = gpu.Allocate<float>(8);
        var e = Assert.Throws<ArgumentException>(() =>
            gpu.Gemm(4, 4, 4, 1, new GemmOperand(a.Span, 4), new GemmOperand(a.Span, 4), 0, new GemmOperand(a.Span, 4)));
        Assert.That(e!.Message, Does.Contain("operand a").And.Contain("holds 8"));
    }

    private static DeviceBuffer<T> Upload<T>(CudaDevice gpu, T[] values) where T : unmanaged
    {
        var buffer = gpu.Allocate<T>(values.Length);
        buffer.CopyFrom(values);
        return buffer;
    }

    private static void ForEachOutput(Problem p, Action<int> check)
    {
        for (int batch = 0; batch < p.Batch; batch++)
        for (int i = 0; i < p.M; i++)
        for (int j = 0; j < p.N; j++)
            check((int)(batch * p.StrideC + (long)i * p.Ldc + j));
    }

    /// <summary>A random row-major GEMM with padded leading dimensions and gapped batch strides.</summary>
    private sealed record Problem(int M, int N, int K, bool TransA, bool TransB, int Batch, float Alpha, float Beta,
        float[] A, int Lda, long StrideA, float[] B, int Ldb, long StrideB, float[] C, int Ldc, long StrideC)
    {
        public static Problem Create(int m, int n, int k, bool transA, bool transB, int batch, int seed)
        {
            var random = new Random(seed);
            var (aRows, aCols) = transA ? (k, m) : (m, k);
            var (bRows, bCols) = transB ? (n, k) : (k, n);
            int lda = aCols + 3, ldb = bCols + 1, ldc = n + 2;
            long strideA = (long)aRows * lda + 4, strideB = (long)bRows * ldb + 8, strideC = (long)m * ldc + 1;
            return new Problem(m, n, k, transA, transB, batch, 0.5f, 1.25f,
                GemmReference.Random(random, strideA * batch), lda, strideA,
                GemmReference.Random(random, strideB * batch), ldb, strideB,
                GemmReference.Random(random, strideC * batch), ldc, strideC);
        }

        public float[] Expected(float[] a, float[] b, float? beta = null)
        {
            var c = (float[])C.Clone();
            GemmReference.RowMajor(M, N, K, Alpha, a, Lda, TransA, StrideA, b, Ldb, TransB, StrideB, beta ?? Beta, c, Ldc, StrideC, Batch);
            return c;
        }
    }
}

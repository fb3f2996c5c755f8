using SoftPrompt.Cuda;

namespace SoftPrompt.Tests.Emulation;

/// <summary>The IComputeDevice contract beyond kernels: memory round trips, slices, zeroing and GEMMs against a naive loop.</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class DeviceContractTests(DeviceKind kind)
{
    private IComputeDevice device = null!;

    [OneTimeSetUp]
    public void OpenDevice() => device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void CloseDevice() => (device as IDisposable)?.Dispose();

    [Test]
    public void HostDeviceRoundTripsKeepEveryByte()
    {
        var rng = new Random(1);
        float[] floats = [.. Enumerable.Range(0, 1001).Select(_ => (float)rng.NextDouble())];
        long[] longs = [.. Enumerable.Range(0, 333).Select(_ => rng.NextInt64())];
        byte[] bytes = [.. Enumerable.Range(0, 77).Select(_ => (byte)rng.Next(256))];
        using var f = device.Upload(floats);
        using var l = device.Upload(longs);
        using var b = device.Upload(bytes);
        Assert.That(f.Download(), Is.EqualTo(floats));
        Assert.That(l.Download(), Is.EqualTo(longs));
        Assert.That(b.Download(), Is.EqualTo(bytes));
    }

    [Test]
    public void SlicesCopiesAndZero()
    {
        float[] data = [.. Enumerable.Range(0, 100).Select(i => (float)i)];
        using var a = device.Upload(data);
        using var c = device.Allocate<float>(100);
        device.Zero(c.Span);
        device.CopyDeviceToDevice(a.Slice(10, 20), c.Slice(50, 20));
        device.CopyToDevice<float>([-1f, -2f], c.Slice(0, 2));
        device.Zero(a.Slice(0, 50));

        var expected = new float[100];
        expected[0] = -1; expected[1] = -2;
        for (int i = 0; i < 20; i++) expected[50 + i] = 10 + i;
        Assert.That(c.Download(), Is.EqualTo(expected));
        var part = new float[5];
        device.CopyToHost(a.Slice(48, 5), part);
        Assert.That(part, Is.EqualTo(new float[] { 0, 0, 50, 51, 52 }));
        device.Synchronize();
    }

    [Test]
    public void CopiesRejectMismatchedLengthsAndOverlaps()
    {
        using var a = device.Allocate<float>(10);
        Assert.Throws<ArgumentException>(() => device.CopyToDevice(new float[3], a.Slice(0, 4)));
        Assert.Throws<ArgumentException>(() => device.CopyToHost(a.Slice(0, 4), new float[5]));
        Assert.Throws<ArgumentException>(() => device.CopyDeviceToDevice(a.Slice(0, 5), a.Slice(3, 5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.Slice(8, 3));
    }

    [Test]
    public void EmptyBuffersNeedNoMemory()
    {
        using var empty = device.Allocate<float>(0);
        Assert.That(empty.Length, Is.Zero);
        device.Zero(empty.Span);
        device.CopyToDevice(ReadOnlySpan<float>.Empty, empty.Span);
        Assert.That(empty.Download(), Is.Empty);
    }

    public readonly record struct GemmCase(int M, int N, int K, bool TransA, bool TransB, int Batch, int Pad, float Alpha, float Beta)
    {
        public override string ToString() => $"m{M} n{N} k{K} {(TransA ? "T" : "N")}{(TransB ? "T" : "N")} batch{Batch} pad{Pad} α{Alpha} β{Beta}";
    }

    private static IEnumerable<GemmCase> GemmCases()
    {
        yield return new(1, 1, 1, false, false, 1, 0, 1, 0);
        yield return new(7, 5, 3, false, false, 1, 0, 1, 0);
        yield return new(7, 5, 3, true, false, 1, 2, 0.5f, 0);
        yield return new(7, 5, 3, false, true, 1, 1, 1, 1);
        yield return new(7, 5, 3, true, true, 1, 3, -2, 0.25f);
        yield return new(33, 65, 17, false, true, 3, 2, 1, 0);
        yield return new(16, 9, 40, true, false, 4, 0, 1, 1);
        yield return new(64, 50, 128, false, false, 2, 5, 0.125f, -1);
        yield return new(5, 6, 0, false, false, 2, 0, 1, 0.5f);  // k = 0: C = beta·C
    }

    [TestCaseSource(nameof(GemmCases))]
    public void GemmMatchesANaiveLoop(GemmCase g)
    {
        var rng = new Random(g.M * 1000 + g.N * 10 + g.K);
        // Stored shapes (row-major) of A and B, each row padded by Pad columns; batches separated by 7 spare elements.
        var (aRows, aCols) = g.TransA ? (g.K, g.M) : (g.M, g.K);
        var (bRows, bCols) = g.TransB ? (g.N, g.K) : (g.K, g.N);
        int lda = Math.Max(1, aCols + g.Pad), ldb = Math.Max(1, bCols + g.Pad), ldc = g.N + g.Pad;
        long strideA = (long)aRows * lda + 7, strideB = (long)bRows * ldb + 7, strideC = (long)g.M * ldc + 7;
        float[] a = Random(rng, (int)(strideA * g.Batch)), b = Random(rng, (int)(strideB * g.Batch)), c = Random(rng, (int)(strideC * g.Batch));
        if (g.Beta == 0) Array.Fill(c, float.NaN);  // beta = 0 must not read C

        var expected = (float[])c.Clone();
        for (int batch = 0; batch < g.Batch; batch++)
            for (int i = 0; i < g.M; i++)
                for (int j = 0; j < g.N; j++)
                {
                    double sum = 0;
                    for (int p = 0; p < g.K; p++)
                    {
                        float av = g.TransA ? a[batch * strideA + p * lda + i] : a[batch * strideA + i * lda + p];
                        float bv = g.TransB ? b[batch * strideB + j * ldb + p] : b[batch * strideB + p * ldb + j];
                        sum += (double)av * bv;
                    }
                    long ci = batch * strideC + i * ldc + j;
                    expected[ci] = (float)(g.Alpha * sum + (g.Beta == 0 ? 0 : g.Beta * (double)c[ci]));
                }

        using var da = device.Upload(a);
        using var db = device.Upload(b);
        using var dc = device.Upload(c);
        device.Gemm(g.M, g.N, g.K, g.Alpha,
            new GemmOperand(da.Span, lda, g.TransA, g.Batch > 1 ? strideA : 0),
            new GemmOperand(db.Span, ldb, g.TransB, g.Batch > 1 ? strideB : 0),
            g.Beta,
            new GemmOperand(dc.Span, ldc, false, g.Batch > 1 ? strideC : 0),
            g.Batch);
        float[] got = dc.Download();
        for (int i = 0; i < got.Length; i++)
        {
            if (float.IsNaN(expected[i])) { Assert.That(got[i], Is.NaN, $"element {i} lies outside C's matrices and must stay untouched"); continue; }
            Assert.That(got[i], Is.EqualTo(expected[i]).Within(1e-4 * (1 + Math.Abs(expected[i]))), $"element {i}");
        }
    }

    [Test]
    public void GemmRejectsOperandsThatDoNotFit()
    {
        using var a = device.Allocate<float>(12);
        using var c = device.Allocate<float>(12);
        // 4×3 · 3×3 needs 9 elements of B; give 8.
        Assert.Throws<ArgumentException>(() => device.Gemm(4, 3, 3, 1, new GemmOperand(a.Span, 3), new GemmOperand(c.Slice(0, 8), 3), 0, new GemmOperand(c.Span, 3)));
        Assert.Throws<ArgumentException>(() => device.Gemm(4, 3, 3, 1, new GemmOperand(a.Span, 2), new GemmOperand(a.Span, 3), 0, new GemmOperand(c.Span, 3)));
        Assert.Throws<ArgumentException>(() => device.Gemm(4, 3, 3, 1, new GemmOperand(a.Span, 3), new GemmOperand(a.Span, 3), 0, new GemmOperand(c.Span, 3, Transposed: true)));
    }

    private static float[] Random(Random rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}

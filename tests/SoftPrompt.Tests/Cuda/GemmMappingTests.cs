using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Tests.Cuda;

/// <summary>
/// The row-major → column-major cuBLAS argument mapping, checked on the CPU: the mapped arguments are fed to a
/// column-major reference sgemm over one flat "device memory" and must give the row-major product.
/// </summary>
public sealed class GemmMappingTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        int[][] shapes = [[1, 1, 1], [3, 5, 7], [17, 33, 65], [64, 1, 128], [1, 100, 3], [31, 16, 1]];
        foreach (var s in shapes)
        foreach (bool ta in new[] { false, true })
        foreach (bool tb in new[] { false, true })
        foreach (int batch in new[] { 1, 3 })
            yield return new TestCaseData(s[0], s[1], s[2], ta, tb, batch).SetName($"Gemm m={s[0]} n={s[1]} k={s[2]} tA={ta} tB={tb} batch={batch}");
    }

    [TestCaseSource(nameof(Cases))]
    public void MappedColumnMajorCallComputesTheRowMajorProduct(int m, int n, int k, bool transA, bool transB, int batch)
    {
        var random = new Random(m * 1000 + n * 10 + k + batch);
        // Padded leading dimensions and batch strides with gaps, so mixing up ld and a dimension shows.
        var (aRows, aCols) = transA ? (k, m) : (m, k);
        var (bRows, bCols) = transB ? (n, k) : (k, n);
        int lda = aCols + 2, ldb = bCols + 1, ldc = n + 3;
        long strideA = (long)aRows * lda + 5, strideB = (long)bRows * ldb + 1, strideC = (long)m * ldc + 7;
        long lengthA = strideA * batch, lengthB = strideB * batch, lengthC = strideC * batch;
        float[] a = GemmReference.Random(random, lengthA), b = GemmReference.Random(random, lengthB), c = GemmReference.Random(random, lengthC);
        const float alpha = 0.75f, beta = -0.5f;

        // Lay the three matrices out in one memory at distinct offsets, as they would be on the device.
        long offA = 11, offB = offA + lengthA + 13, offC = offB + lengthB + 17;
        var memory = new float[offC + lengthC];
        a.CopyTo(memory, offA);
        b.CopyTo(memory, offB);
        c.CopyTo(memory, offC);

        var g = GemmMapping.ToColumnMajor(m, n, k,
            new RowMajorMatrix((ulong)offA, lengthA, lda, transA, strideA),
            new RowMajorMatrix((ulong)offB, lengthB, ldb, transB, strideB),
            new RowMajorMatrix((ulong)offC, lengthC, ldc, false, strideC), batch);
        GemmReference.ColumnMajorSgemm(memory, g.TransA == CublasOperation.T, g.TransB == CublasOperation.T, g.M, g.N, g.K, alpha,
            (long)g.A, g.Lda, g.StrideA, (long)g.B, g.Ldb, g.StrideB, beta, (long)g.C, g.Ldc, g.StrideC, g.BatchCount);

        var expected = (float[])c.Clone();
        GemmReference.RowMajor(m, n, k, alpha, a, lda, transA, strideA, b, ldb, transB, strideB, beta, expected, ldc, strideC, batch);
        Assert.That(memory.AsSpan((int)offC, (int)lengthC).ToArray(), Is.EqualTo(expected).Within(1e-5f));
        // The padding between and after the matrices is untouched.
        Assert.That(memory.AsSpan((int)offA, (int)lengthA).ToArray(), Is.EqualTo(a));
        Assert.That(memory.AsSpan((int)offB, (int)lengthB).ToArray(), Is.EqualTo(b));
    }

    [Test]
    public void SwapsOperandsAndSizes()
    {
        var g = GemmMapping.ToColumnMajor(2, 3, 4,
            new RowMajorMatrix(100, 8, 4, false, 0), new RowMajorMatrix(200, 12, 4, true, 0), new RowMajorMatrix(300, 6, 3, false, 0), 1);
        Assert.That(g, Is.EqualTo(new ColumnMajorGemm(CublasOperation.T, CublasOperation.N, 3, 2, 4, 200, 4, 0, 100, 4, 0, 300, 3, 0, 1)));
    }

    [Test]
    public void BroadcastsAnOperandWithZeroBatchStride()
    {
        // One weight matrix B shared by every batch, as for a linear layer over a batch of sequences.
        const int m = 4, n = 3, k = 5, batch = 3;
        var random = new Random(7);
        float[] a = GemmReference.Random(random, batch * m * k), b = GemmReference.Random(random, k * n);
        var memory = new float[a.Length + b.Length + batch * m * n];
        a.CopyTo(memory, 0);
        b.CopyTo(memory, a.Length);
        long offC = a.Length + b.Length;
        var g = GemmMapping.ToColumnMajor(m, n, k, new RowMajorMatrix(0, a.Length, k, false, m * k),
            new RowMajorMatrix((ulong)a.Length, b.Length, n, false, 0), new RowMajorMatrix((ulong)offC, batch * m * n, n, false, m * n), batch);
        GemmReference.ColumnMajorSgemm(memory, g.TransA == CublasOperation.T, g.TransB == CublasOperation.T, g.M, g.N, g.K, 1,
            (long)g.A, g.Lda, g.StrideA, (long)g.B, g.Ldb, g.StrideB, 0, (long)g.C, g.Ldc, g.StrideC, g.BatchCount);
        var expected = new float[batch * m * n];
        GemmReference.RowMajor(m, n, k, 1, a, k, false, m * k, b, n, false, 0, 0, expected, n, m * n, batch);
        Assert.That(memory.AsSpan((int)offC).ToArray(), Is.EqualTo(expected).Within(1e-5f));
    }

    [Test]
    public void RejectsLeadingDimensionsSmallerThanTheStoredRows()
    {
        var ex = Assert.Throws<ArgumentException>(() => GemmMapping.ToColumnMajor(2, 3, 4,
            new RowMajorMatrix(0, 100, 4, false, 0), new RowMajorMatrix(0, 100, 2, false, 0), new RowMajorMatrix(0, 100, 3, false, 0), 1));
        Assert.That(ex!.Message, Does.Contain("operand b").And.Contain("leading dimension 2").And.Contain("3 columns"));
    }

    [Test]
    public void RejectsSpansTooShortForTheShapeAndBatch()
    {
        var ex = Assert.Throws<ArgumentException>(() => GemmMapping.ToColumnMajor(2, 3, 4,
            new RowMajorMatrix(0, 8, 4, false, 8), new RowMajorMatrix(0, 100, 3, false, 0), new RowMajorMatrix(0, 100, 3, false, 6), 2));
        Assert.That(ex!.Message, Does.Contain("operand a").And.Contain("reaches element 16").And.Contain("holds 8"));
    }

    [Test]
    public void RejectsTransposedOrOverlappingOutputs()
    {
        var a = new RowMajorMatrix(0, 100, 4, false, 8);
        var b = new RowMajorMatrix(0, 100, 3, false, 0);
        Assert.Throws<ArgumentException>(() => GemmMapping.ToColumnMajor(2, 3, 4, a, b, new RowMajorMatrix(0, 100, 3, true, 6), 2));
        var ex = Assert.Throws<ArgumentException>(() => GemmMapping.ToColumnMajor(2, 3, 4, a, b, new RowMajorMatrix(0, 100, 3, false, 5), 2));
        Assert.That(ex!.Message, Does.Contain("overlap"));
        Assert.Throws<ArgumentOutOfRangeException>(() => GemmMapping.ToColumnMajor(2, 3, 4, a, b, new RowMajorMatrix(0, 100, 3, false, 6), 0));
    }

    [Test]
    public void MappingAllocatesNothing()
    {
        // It runs on every GEMM of every step.
        var a = new RowMajorMatrix(0, 100, 4, false, 8);
        var b = new RowMajorMatrix(0, 100, 4, true, 0);
        var c = new RowMajorMatrix(0, 100, 3, false, 6);
        GemmMapping.ToColumnMajor(2, 3, 4, a, b, c, 2);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) GemmMapping.ToColumnMajor(2, 3, 4, a, b, c, 2);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void EmptyOutputIsANoOp()
    {
        var g = GemmMapping.ToColumnMajor(0, 3, 4, new RowMajorMatrix(0, 0, 4, false, 0), new RowMajorMatrix(0, 12, 3, false, 0),
            new RowMajorMatrix(0, 0, 3, false, 0), 1);
        Assert.That(g.IsEmpty, Is.True);
    }

    [Test]
    public void DeviceOperandsCarryByteAddressesAndElementStrides()
    {
        // GemmOperand holds DeviceSpan<float>: a slice moves the address by 4 bytes per element, strides stay in elements.
        var span = new DeviceSpan<float>(0x1000, 64).Slice(4, 24);
        Assert.That(span.Address, Is.EqualTo(0x1010UL));
        var g = GemmMapping.ToColumnMajor(2, 3, 4, new RowMajorMatrix(span.Address, span.Length, 4, false, 0),
            new RowMajorMatrix(0x2000, 12, 3, false, 0), new RowMajorMatrix(0x3000, 6, 3, false, 0), 1);
        Assert.That(g.B, Is.EqualTo(0x1010UL));
    }
}

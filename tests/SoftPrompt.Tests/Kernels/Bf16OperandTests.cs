using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The pieces of a bf16 GEMM on every device: convert_to_bf16 rounds as the host does (bit for bit), and
/// IComputeDevice.GemmBf16 multiplies the bf16 values exactly and sums in fp32 (strided, batched, transposed), into an fp32 C or a
/// bf16 C rounded once.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16OperandTests(DeviceKind kind) : KernelTestBase(kind)
{
    [TestCase(1)]
    [TestCase(1031)]
    public void ConvertToBf16RoundsToNearestEvenAsTheHostDoes(int n)
    {
        var x = RandomFloats(n, n, -3e4f, 3e4f);
        // Ties (exactly half an ulp of bf16 either way), zeros, infinities, a denormal, the largest finite values.
        float[] special = [1f + 1f / 256, 1f + 3f / 256, -0f, 0f, float.PositiveInfinity, float.NegativeInfinity, 1e-40f, float.MaxValue, -float.MaxValue, 3.3895314e38f];
        for (int i = 0; i < Math.Min(n, special.Length); i++) x[i] = special[i];
        using var dx = Put(x);
        using var dy = Zeros<ushort>(n);
        ConvertToBf16.Launch(Device, dy.Span, dx.Span);
        var expected = x.Select(ElementConversion.SingleToBFloat16).ToArray();
        Assert.That(dy.Read(), Is.EqualTo(expected));
    }

    [TestCase(1)]
    [TestCase(1031)]
    public void RoundToBf16KeepsTheBf16ValueInFp32InPlace(int n)
    {
        var x = RandomFloats(n, n + 1, -3e4f, 3e4f);
        float[] special = [1f + 1f / 256, 1f + 3f / 256, -0f, float.NegativeInfinity, 1e-40f, 3.3895314e38f];
        for (int i = 0; i < Math.Min(n, special.Length); i++) x[i] = special[i];
        using var dx = Put(x);
        RoundToBf16.Launch(Device, dx.Span, dx.Span);
        var expected = x.Select(v => GemmReference.FromBf16(ElementConversion.SingleToBFloat16(v))).ToArray();
        Assert.That(dx.Read(), Is.EqualTo(expected));
    }

    [Test]
    public void ConvertToBf16KeepsNaNANaN()
    {
        using var dx = Put(new[] { float.NaN, -float.NaN });
        using var dy = Zeros<ushort>(2);
        ConvertToBf16.Launch(Device, dy.Span, dx.Span);
        foreach (ushort bits in dy.Read()) Assert.That(float.IsNaN(GemmReference.FromBf16(bits)), $"bits 0x{bits:x4}");
    }

    [TestCase(1)]
    [TestCase(1031)]
    public void ConvertFromBf16WidensExactly(int n)
    {
        var rng = new Random(n);
        ushort[] x = [.. Enumerable.Range(0, n).Select(_ => (ushort)rng.Next(0, 0x10000))];
        using var dx = Put(x);
        using var dy = Put(Enumerable.Repeat(float.NaN, n + 1).ToArray());
        ConvertFromBf16.Launch(Device, dy.Span.Slice(0, n), dx.Span);
        var y = dy.Read();
        for (int i = 0; i < n; i++)
            Assert.That(BitConverter.SingleToUInt32Bits(y[i]), Is.EqualTo((uint)x[i] << 16), $"element {i} (bits 0x{x[i]:x4})");
        Assert.That(float.IsNaN(y[n]), "the element after y is untouched");
    }

    [TestCase(5, 7, 3, false, true, 1)]
    [TestCase(33, 47, 130, false, true, 2)]
    [TestCase(17, 9, 65, true, false, 3)]
    public void GemmBf16MultipliesTheBf16ValuesAndSumsInFp32(int m, int n, int k, bool transA, bool transB, int batch)
    {
        var random = new Random(m + n + k);
        int lda = (transA ? m : k) + 2, ldb = (transB ? k : n) + 1, ldc = n + 3;
        long strideA = (long)(transA ? k : m) * lda, strideB = (long)(transB ? n : k) * ldb, strideC = (long)m * ldc;
        var a16 = GemmReference.Random(random, (int)(batch * strideA)).Select(GemmReference.ToBf16).ToArray();
        var b16 = GemmReference.Random(random, (int)(batch * strideB)).Select(GemmReference.ToBf16).ToArray();
        var c = GemmReference.Random(random, (int)(batch * strideC));
        var expected = (float[])c.Clone();
        GemmReference.RowMajor(m, n, k, 0.5f, [.. a16.Select(GemmReference.FromBf16)], lda, transA, strideA, [.. b16.Select(GemmReference.FromBf16)], ldb, transB, strideB,
            0.25f, expected, ldc, strideC, batch);
        using var da = Put(a16);
        using var db = Put(b16);
        using var dc = Put(c);
        Device.GemmBf16(m, n, k, 0.5f, new Bf16GemmOperand(da.Span, lda, transA, strideA), new Bf16GemmOperand(db.Span, ldb, transB, strideB), 0.25f,
            new GemmOperand(dc.Span, ldc, false, strideC), batch);
        // fp32 sums of exact products against double sums: the order of the fp32 additions is all that differs. The padding
        // between rows keeps its old values, which the reference keeps too.
        Assert.That(dc.Read(), Is.EqualTo(expected).Within(1e-4f));
    }
    [TestCase(5, 7, 3, false, true, 1, 0f)]
    [TestCase(33, 47, 130, false, true, 2, 1f)]
    [TestCase(17, 9, 65, true, false, 3, 0.25f)]
    public void GemmBf16WithBf16OutputRoundsTheFp32SumOnce(int m, int n, int k, bool transA, bool transB, int batch, float beta)
    {
        var random = new Random(m * n + k);
        int lda = (transA ? m : k) + 2, ldb = (transB ? k : n) + 1, ldc = n + 3;
        long strideA = (long)(transA ? k : m) * lda, strideB = (long)(transB ? n : k) * ldb, strideC = (long)m * ldc;
        var a16 = GemmReference.Random(random, (int)(batch * strideA)).Select(GemmReference.ToBf16).ToArray();
        var b16 = GemmReference.Random(random, (int)(batch * strideB)).Select(GemmReference.ToBf16).ToArray();
        // C holds bf16 values; with beta = 0 a NaN there must not leak into the output (cuBLAS never reads it).
        var c16 = GemmReference.Random(random, (int)(batch * strideC)).Select(v => beta == 0 ? (ushort)0x7fc1 : GemmReference.ToBf16(v)).ToArray();
        var exact = c16.Select(GemmReference.FromBf16).ToArray();
        GemmReference.RowMajor(m, n, k, 0.5f, [.. a16.Select(GemmReference.FromBf16)], lda, transA, strideA, [.. b16.Select(GemmReference.FromBf16)], ldb, transB, strideB,
            beta, exact, ldc, strideC, batch);
        using var da = Put(a16);
        using var db = Put(b16);
        using var dc = Put(c16);
        Device.GemmBf16(m, n, k, 0.5f, new Bf16GemmOperand(da.Span, lda, transA, strideA), new Bf16GemmOperand(db.Span, ldb, transB, strideB), beta,
            new Bf16GemmOperand(dc.Span, ldc, false, strideC), batch);
        var actual = dc.Read();
        int outputs = 0, offByOne = 0;
        for (int bi = 0; bi < batch; bi++)
        for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++)
        {
            long at = bi * strideC + (long)i * ldc + j;
            if (j >= n)
            {
                Assert.That(actual[at], Is.EqualTo(c16[at]), $"padding element {at} was written");
                continue;
            }
            // One rounding of the fp32 sum: the nearest bf16 of the double-summed reference, or (when the fp32 sum lands on
            // the other side of a tie) its neighbour; two roundings or truncation would miss far more often than ties happen.
            int distance = Math.Abs((short)actual[at] - (short)GemmReference.ToBf16(exact[at]));
            Assert.That(distance, Is.LessThanOrEqualTo(1), $"element {at}: 0x{actual[at]:x4}, the reference rounds to 0x{GemmReference.ToBf16(exact[at]):x4} ({exact[at]})");
            outputs++;
            if (distance == 1) offByOne++;
        }
        Assert.That(offByOne, Is.LessThanOrEqualTo(outputs / 100), $"{offByOne} of {outputs} outputs are one bf16 ulp off the nearest");
    }
}

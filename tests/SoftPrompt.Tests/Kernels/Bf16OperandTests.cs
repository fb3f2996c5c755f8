using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The pieces of a bf16 GEMM on every device: convert_to_bf16 rounds as the host does (bit for bit), and
/// <see cref="IComputeDevice.GemmBf16"/> multiplies the bf16 values exactly and sums in fp32 (strided, batched, transposed).
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

    [Test]
    public void ConvertToBf16KeepsNaNANaN()
    {
        using var dx = Put(new[] { float.NaN, -float.NaN });
        using var dy = Zeros<ushort>(2);
        ConvertToBf16.Launch(Device, dy.Span, dx.Span);
        foreach (ushort bits in dy.Read()) Assert.That(float.IsNaN(GemmReference.FromBf16(bits)), $"bits 0x{bits:x4}");
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
}

using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The bf16-output variants of the norm and activation kernels (layernorm_forward_bf16, rmsnorm_forward_bf16,
/// gelu_forward_bf16, relu_forward_bf16, gated_gelu_forward_bf16, swiglu_forward_bf16: the operands of bf16 GEMMs, written
/// without a convert_to_bf16 pass). Each value must be the fp32 kernel's value rounded to nearest even, bit for bit (the
/// engines' bf16 results then stay exactly what they were with the conversion pass), and within bf16 rounding of the
/// float64 CPU op; the statistics (mean, rstd) are the fp32 kernel's bits. Shapes cover the vector path, the scalar path
/// (odd widths, a misaligned offset) and the norms' streamed path (rows over 2048 channels).
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16OutputKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    [TestCase(5, 64, 0)]     // float4 path, row in registers
    [TestCase(3, 37, 0)]     // scalar path
    [TestCase(4, 48, 1)]     // misaligned: scalar path
    [TestCase(2, 2100, 0)]   // float4 path, streamed row
    public void NormsWriteTheirFp32ResultRoundedToBf16(int rows, int channels, int offset)
    {
        float[] x = RandomFloats(rows * channels, 1, -3f, 3f), weight = RandomFloats(channels, 2, 0.5f, 1.5f), bias = RandomFloats(channels, 3);
        using var dx = Put(x, offset); using var dw = Put(weight, offset); using var db = Put(bias, offset);
        using var y32 = Zeros<float>(rows * channels, offset); using var y16 = Zeros<ushort>(rows * channels, offset);
        using var mean32 = Zeros<float>(rows); using var rstd32 = Zeros<float>(rows); using var mean16 = Zeros<float>(rows); using var rstd16 = Zeros<float>(rows);

        LayerNormForward.Launch(Device, y32.Span, mean32.Span, rstd32.Span, dx.Span, dw.Span, db.Span, rows, channels, 1e-5f);
        LayerNormForward.Launch(Device, y16.Span, mean16.Span, rstd16.Span, dx.Span, dw.Span, db.Span, rows, channels, 1e-5f);
        var reference = new double[rows * channels];
        LayerNormOps.Forward<double>(reference, new double[rows], new double[rows], Wide(x), Wide(weight), Wide(bias), rows, channels, 1e-5);
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "layernorm");
        Assert.That(mean16.Read(), Is.EqualTo(mean32.Read()), "layernorm mean");
        Assert.That(rstd16.Read(), Is.EqualTo(rstd32.Read()), "layernorm rstd");

        RmsNormForward.Launch(Device, y32.Span, rstd32.Span, dx.Span, dw.Span, rows, channels, 1e-6f);
        RmsNormForward.Launch(Device, y16.Span, rstd16.Span, dx.Span, dw.Span, rows, channels, 1e-6f);
        RmsNormOps.Forward<double>(reference, new double[rows], Wide(x), Wide(weight), rows, channels, 1e-6);
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "rmsnorm");
        Assert.That(rstd16.Read(), Is.EqualTo(rstd32.Read()), "rmsnorm rstd");
    }

    [TestCase(1027, 0)]  // float4 path and a 3-element tail
    [TestCase(333, 1)]   // misaligned: scalar path
    public void ActivationsWriteTheirFp32ResultRoundedToBf16(int n, int offset)
    {
        float[] a = RandomFloats(n, 4, -4f, 4f), b = RandomFloats(n, 5, -2f, 2f);
        using var da = Put(a, offset); using var db = Put(b, offset);
        using var y32 = Zeros<float>(n, offset); using var y16 = Zeros<ushort>(n, offset);
        var reference = new double[n];

        ReluForward.Launch(Device, y32.Span, da.Span);
        ReluForward.Launch(Device, y16.Span, da.Span);
        ReluOps.Forward<double>(reference, Wide(a));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "relu");

        GatedGeluForward.Launch(Device, y32.Span, da.Span, db.Span);
        GatedGeluForward.Launch(Device, y16.Span, da.Span, db.Span);
        GatedGeluOps.Forward<double>(reference, Wide(a), Wide(b));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "gated gelu");

        SwiGluForward.Launch(Device, y32.Span, da.Span, db.Span, n);
        SwiGluForward.Launch(Device, y16.Span, da.Span, db.Span, n);
        SwiGluOps.Forward<double>(reference, Wide(a), Wide(b));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "swiglu");
    }

    [TestCase(1027, 0)]  // vector path and a 3-element tail
    [TestCase(333, 1)]   // misaligned: scalar path
    public void Bf16IoActivationsRoundTheFp32KernelsResultOnTheWidenedInputs(int n, int offset)
    {
        // The *_bf16_io kernels read bf16 pre-activations (and an fp32 dy backward): on the same widened values the fp32
        // kernels' results, rounded to bf16, must come out bit for bit.
        ushort[] a16 = [.. RandomFloats(n, 6, -4f, 4f).Select(GemmReference.ToBf16)], b16 = [.. RandomFloats(n, 7, -2f, 2f).Select(GemmReference.ToBf16)];
        float[] a = [.. a16.Select(GemmReference.FromBf16)], b = [.. b16.Select(GemmReference.FromBf16)], dy = RandomFloats(n, 8, -1f, 1f);
        using var da16 = Put(a16, offset); using var db16 = Put(b16, offset);
        using var da = Put(a, offset); using var db = Put(b, offset); using var ddy = Put(dy, offset);
        using var y32 = Zeros<float>(n, offset); using var z32 = Zeros<float>(n, offset);
        using var y16 = Zeros<ushort>(n, offset); using var z16 = Zeros<ushort>(n, offset);
        double[] reference = new double[n], reference2 = new double[n];

        ReluForward.Launch(Device, y32.Span, da.Span);
        ReluForward.Launch(Device, y16.Span, da16.Span);
        ReluOps.Forward<double>(reference, Wide(a));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "relu_forward_bf16_io");
        ReluBackward.Launch(Device, y32.Span, ddy.Span, da.Span);
        ReluBackward.Launch(Device, y16.Span, ddy.Span, da16.Span);
        ReluOps.Backward<double>(reference, Wide(dy), Wide(a));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "relu_backward_bf16_io");

        GatedGeluForward.Launch(Device, y32.Span, da.Span, db.Span);
        GatedGeluForward.Launch(Device, y16.Span, da16.Span, db16.Span);
        GatedGeluOps.Forward<double>(reference, Wide(a), Wide(b));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "gated_gelu_forward_bf16_io");
        GatedGeluBackward.Launch(Device, y32.Span, z32.Span, ddy.Span, da.Span, db.Span);
        GatedGeluBackward.Launch(Device, y16.Span, z16.Span, ddy.Span, da16.Span, db16.Span);
        GatedGeluOps.Backward<double>(reference, reference2, Wide(dy), Wide(a), Wide(b));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "gated_gelu_backward_bf16_io dGate");
        AssertRoundedFp32(z16.Read(), z32.Read(), reference2, "gated_gelu_backward_bf16_io dLinear");

        SwiGluForward.Launch(Device, y32.Span, da.Span, db.Span, n);
        SwiGluForward.Launch(Device, y16.Span, da16.Span, db16.Span, n);
        SwiGluOps.Forward<double>(reference, Wide(a), Wide(b));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "swiglu_forward_bf16_io");
        SwiGluBackward.Launch(Device, y32.Span, z32.Span, ddy.Span, da.Span, db.Span, n);
        SwiGluBackward.Launch(Device, y16.Span, z16.Span, ddy.Span, da16.Span, db16.Span, n);
        SwiGluOps.Backward<double>(reference, reference2, Wide(dy), Wide(a), Wide(b));
        AssertRoundedFp32(y16.Read(), y32.Read(), reference, "swiglu_backward_bf16_io dGate");
        AssertRoundedFp32(z16.Read(), z32.Read(), reference2, "swiglu_backward_bf16_io dUp");
    }

    // convert_from_bf16 (the cached Llama step's q|k|v for the fp32 cache): every bf16 value, NaN and ±0 included, widened
    // exactly; nothing past n written.
    [TestCase(1027, 0)]
    [TestCase(5, 1)]
    public void ConvertFromBf16WidensExactly(int n, int offset)
    {
        var rng = new Random(n);
        ushort[] x = [.. Enumerable.Range(0, n).Select(i => i == 1 ? (ushort)0x8000 : i == 2 ? (ushort)0x7fc1 : (ushort)rng.Next(65536))];
        using var dx = Put(x, offset);
        using var y = Put(Enumerable.Repeat(-1f, n + 1).ToArray(), offset);
        ConvertFromBf16.Launch(Device, y.Span.Slice(0, n), dx.Span);
        var actual = y.Read();
        for (int i = 0; i < n; i++)
            Assert.That(BitConverter.SingleToUInt32Bits(actual[i]), Is.EqualTo((uint)x[i] << 16), $"element {i}");
        Assert.That(actual[n], Is.EqualTo(-1f), "past n");
    }

    [Test]
    public void ABf16GradientOverTheFp32IncomingGradientIsRefused()
    {
        using var dy = Zeros<float>(64);
        using var x = Zeros<ushort>(64);
        var overDy = new DeviceSpan<ushort>(dy.Span.Address, 64);
        Assert.That(() => ReluBackward.Launch(Device, overDy, dy.Span, x.Span), Throws.ArgumentException.With.Message.Contains("overlaps the fp32 input dy"));
    }

    [Test]
    public void AShortBf16OutputIsRefused()
    {
        using var x = Zeros<float>(64);
        using var y = Zeros<ushort>(63);
        Assert.That(() => ReluForward.Launch(Device, y.Span, x.Span), Throws.ArgumentException.With.Message.Contains("relu_forward_bf16"));
        Assert.That(() => RmsNormForward.Launch(Device, y.Span, default, x.Span, x.Span, 8, 8, 1e-6f), Throws.ArgumentException.With.Message.Contains("rmsnorm_forward_bf16"));
    }

    private static double[] Wide(float[] x) => [.. x.Select(v => (double)v)];

    // Every element: the bf16 bits are the fp32 kernel's value rounded to nearest even, and within bf16 rounding (2^-9
    // relative, doubled for the fp32 kernel's own error) of float64.
    private static void AssertRoundedFp32(ushort[] bf16, float[] fp32, double[] reference, string what)
    {
        double maxAbs = Math.Max(1, reference.Max(Math.Abs));
        for (int i = 0; i < fp32.Length; i++)
        {
            if (bf16[i] != GemmReference.ToBf16(fp32[i]))
                Assert.Fail($"{what}[{i}]: bf16 bits 0x{bf16[i]:x4}, the fp32 kernel's {fp32[i]:R} rounds to 0x{GemmReference.ToBf16(fp32[i]):x4}");
            double err = Math.Abs(GemmReference.FromBf16(bf16[i]) - reference[i]);
            if (!(err <= Math.Abs(reference[i]) / 256 + 1e-5 * maxAbs))
                Assert.Fail($"{what}[{i}] = {GemmReference.FromBf16(bf16[i]):R}, float64 {reference[i]:R} (error {err:E2})");
        }
    }
}

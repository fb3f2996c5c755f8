using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// layernorm_backward_bf16 and rmsnorm_backward_bf16 (the bf16 reverse passes: the residual gradient's bf16 copy for the
/// next GEMM) against layernorm_backward / rmsnorm_backward: dx bit-identical, and the copy each updated dx value rounded
/// once to nearest even.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class NormBackwardBf16Tests(DeviceKind kind) : KernelTestBase(kind)
{
    public enum Norm { LayerNorm, RmsNorm }

    //   rows     C  offset   path
    private static readonly (int Rows, int Channels, int Offset)[] Shapes =
    [
        (1, 1, 0),       // scalar, cached
        (5, 33, 0),
        (9, 32, 0),      // float4, more than one block of 8 rows
        (4, 100, 1),     // scalar (misaligned), cached
        (9, 64, 0),      // float4, cached (the hs64 fixtures' width)
        (9, 768, 0),     // float4, cached (GPT-2 small's width)
        (3, 1600, 0),    // float4, streamed
        (3, 2048, 0),    // float4, streamed (Llama 3.2 1B's width)
        (2, 1101, 0),    // scalar, streamed
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from norm in Enum.GetValues<Norm>() from s in Shapes select new TestCaseData(norm, s.Rows, s.Channels, s.Offset);

    [TestCaseSource(nameof(Cases))]
    public void TheBf16CopyIsTheUpdatedDxRoundedOnce(Norm norm, int rows, int channels, int offset)
    {
        float[] x = RandomFloats(rows * channels, 3 * rows + channels, -2f, 4f);
        float[] weight = RandomFloats(channels, 8, 0.5f, 1.5f), bias = RandomFloats(channels, 9);
        var y = new float[rows * channels];
        var mean = new float[rows];
        var rstd = new float[rows];
        if (norm == Norm.LayerNorm) LayerNormOps.Forward<float>(y, mean, rstd, x, weight, bias, rows, channels, 1e-5f);
        else RmsNormOps.Forward<float>(y, rstd, x, weight, rows, channels, 1e-5f);
        float[] dy = RandomFloats(rows * channels, 10), dx = RandomFloats(rows * channels, 11);

        using var dDy = Put(dy, offset);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dMean = Put(mean);
        using var dRstd = Put(rstd);
        // The plain kernel when copy is empty, else the bf16 one.
        void Backward(DeviceSpan<float> target, DeviceSpan<ushort> copy)
        {
            bool plain = copy.Length == 0;
            if (norm == Norm.LayerNorm && plain) LayerNormBackward.Launch(Device, target, dDy.Span, dX.Span, dW.Span, dMean.Span, dRstd.Span, rows, channels);
            else if (norm == Norm.LayerNorm) LayerNormBackward.Launch(Device, target, copy, dDy.Span, dX.Span, dW.Span, dMean.Span, dRstd.Span, rows, channels);
            else if (plain) RmsNormBackward.Launch(Device, target, dDy.Span, dX.Span, dW.Span, dRstd.Span, rows, channels);
            else RmsNormBackward.Launch(Device, target, copy, dDy.Span, dX.Span, dW.Span, dRstd.Span, rows, channels);
        }

        using var dFp32 = Put(dx, offset);
        Backward(dFp32.Span, default);
        float[] expected = dFp32.Read();

        using var dDx = Put(dx, offset);
        using var dCopy = Put(Enumerable.Repeat((ushort)0xffff, rows * channels + 1).ToArray(), offset);
        Backward(dDx.Span, dCopy.Span.Slice(0, rows * channels));
        AssertBitEqual(dDx.Read(), expected, $"dx (fp32, as the plain {norm} backward)");
        var copy = dCopy.Read();
        Assert.That(copy[..^1], Is.EqualTo(expected.Select(GemmReference.ToBf16).ToArray()), "dx_bf16 = to_bf16(dx), bit for bit");
        Assert.That(copy[^1], Is.EqualTo((ushort)0xffff), "the element after the rows is untouched");
    }

    [TestCase(Norm.LayerNorm)]
    [TestCase(Norm.RmsNorm)]
    public void TheLauncherRejectsAShortCopy(Norm norm)
    {
        using var buffer = Zeros<float>(8);
        using var x = Zeros<float>(8);
        using var dy = Zeros<float>(8);
        using var weight = Zeros<float>(4);
        using var stats = Zeros<float>(2);
        using var copy = Zeros<ushort>(7);
        if (norm == Norm.LayerNorm)
            Assert.That(() => LayerNormBackward.Launch(Device, buffer.Span, copy.Span, dy.Span, x.Span, weight.Span, stats.Span, stats.Span, 2, 4),
                Throws.ArgumentException.With.Message.Contains("layernorm_backward_bf16"));
        else
            Assert.That(() => RmsNormBackward.Launch(Device, buffer.Span, copy.Span, dy.Span, x.Span, weight.Span, stats.Span, 2, 4),
                Throws.ArgumentException.With.Message.Contains("rmsnorm_backward_bf16"));
    }
}

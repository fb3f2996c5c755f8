using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// rmsnorm_backward_bf16 (Llama's bf16 reverse pass: the residual gradient's bf16 copy for the next GEMM) against
/// rmsnorm_backward: dx bit-identical, and the copy each updated dx value rounded once to nearest even.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class RmsNormBackwardBf16Tests(DeviceKind kind) : KernelTestBase(kind)
{
    //       rows    C  offset   path
    [TestCase(1, 1, 0)]        // scalar, cached
    [TestCase(5, 33, 0)]
    [TestCase(9, 32, 0)]       // float4, more than one block of 8 rows
    [TestCase(4, 100, 1)]      // scalar (misaligned), cached
    [TestCase(9, 64, 0)]       // float4, cached (the hs64 fixtures' width)
    [TestCase(3, 2048, 0)]     // float4, streamed (Llama 3.2 1B's width)
    [TestCase(2, 1101, 0)]     // scalar, streamed
    public void TheBf16CopyIsTheUpdatedDxRoundedOnce(int rows, int channels, int offset)
    {
        float[] x = RandomFloats(rows * channels, 3 * rows + channels, -2f, 4f);
        float[] weight = RandomFloats(channels, 8, 0.5f, 1.5f);
        var y = new float[rows * channels];
        var rstd = new float[rows];
        RmsNormOps.Forward<float>(y, rstd, x, weight, rows, channels, 1e-5f);
        float[] dy = RandomFloats(rows * channels, 10), dx = RandomFloats(rows * channels, 11);

        using var dDy = Put(dy, offset);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dRstd = Put(rstd);
        using var dFp32 = Put(dx, offset);
        RmsNormBackward.Launch(Device, dFp32.Span, dDy.Span, dX.Span, dW.Span, dRstd.Span, rows, channels);
        float[] expected = dFp32.Read();

        using var dDx = Put(dx, offset);
        using var dCopy = Put(Enumerable.Repeat((ushort)0xffff, rows * channels + 1).ToArray(), offset);
        RmsNormBackward.Launch(Device, dDx.Span, dCopy.Span.Slice(0, rows * channels), dDy.Span, dX.Span, dW.Span, dRstd.Span, rows, channels);
        AssertBitEqual(dDx.Read(), expected, "dx (fp32, as rmsnorm_backward)");
        var copy = dCopy.Read();
        Assert.That(copy[..^1], Is.EqualTo(expected.Select(GemmReference.ToBf16).ToArray()), "dx_bf16 = to_bf16(dx), bit for bit");
        Assert.That(copy[^1], Is.EqualTo((ushort)0xffff), "the element after the rows is untouched");
    }

    [Test]
    public void TheLauncherRejectsAShortCopy()
    {
        using var buffer = Zeros<float>(8);
        using var x = Zeros<float>(8);
        using var dy = Zeros<float>(8);
        using var weight = Zeros<float>(4);
        using var rstd = Zeros<float>(2);
        using var copy = Zeros<ushort>(7);
        Assert.That(() => RmsNormBackward.Launch(Device, buffer.Span, copy.Span, dy.Span, x.Span, weight.Span, rstd.Span, 2, 4),
            Throws.ArgumentException.With.Message.Contains("rmsnorm_backward_bf16"));
    }
}

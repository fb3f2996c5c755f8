using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>kernels/activation.cu against Cpu/GeluOps (tanhf to a few ulps) and the bias(+residual) fill (exact).</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class ActivationKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    [TestCase(1, 0)]
    [TestCase(3, 0)]
    [TestCase(33, 0)]
    [TestCase(1000, 0)]
    [TestCase(4099, 0)]   // float4 body + 3-element tail
    [TestCase(4099, 1)]   // misaligned: scalar
    public void GeluForwardAndBackwardMatchTheCpuOp(int n, int offset)
    {
        float[] x = RandomFloats(n, n, -6f, 6f);
        float[] dy = RandomFloats(n, n + 1);
        var y = new float[n];
        var dx = new float[n];
        GeluOps.Forward<float>(y, x);
        GeluOps.Backward<float>(dx, dy, x);

        using var dX = Put(x, offset);
        using var dY = Zeros<float>(n, offset);
        using var dDy = Put(dy, offset);
        using var dDx = Zeros<float>(n, offset);
        GeluForward.Launch(Device, dY.Span, dX.Span);
        AssertClose(dY.Read(), y, 1e-5, 1e-6, "y");
        GeluBackward.Launch(Device, dDx.Span, dDy.Span, dX.Span);
        AssertClose(dDx.Read(), dx, 1e-5, 1e-6, "dx");
    }

    [TestCase(1001, 0)]
    [TestCase(1001, 3)]
    public void GeluRunsInPlace(int n, int offset)
    {
        float[] x = RandomFloats(n, 7, -6f, 6f);
        float[] dy = RandomFloats(n, 8);
        var y = new float[n];
        var dx = new float[n];
        GeluOps.Forward<float>(y, x);
        GeluOps.Backward<float>(dx, dy, x);

        using var dX = Put(x, offset);
        using var inPlace = Put(x, offset);
        using var dDy = Put(dy, offset);
        GeluForward.Launch(Device, inPlace.Span, inPlace.Span);
        AssertClose(inPlace.Read(), y, 1e-5, 1e-6, "y (in place)");
        GeluBackward.Launch(Device, dDy.Span, dDy.Span, dX.Span);
        AssertClose(dDy.Read(), dx, 1e-5, 1e-6, "dx (in place over dy)");
    }

    //       rows   C  residual offset
    [TestCase(1, 1, true, 0)]
    [TestCase(3, 3, false, 0)]
    [TestCase(5, 33, true, 0)]
    [TestCase(4, 100, true, 0)]   // float4
    [TestCase(4, 100, true, 1)]   // scalar
    [TestCase(4, 100, false, 0)]
    [TestCase(7, 769, true, 0)]
    public void BiasResidualWritesResidualPlusBias(int rows, int channels, bool withResidual, int offset)
    {
        float[] residual = RandomFloats(rows * channels, 31);
        float[] bias = RandomFloats(channels, 32);
        var expected = new float[rows * channels];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++)
                expected[r * channels + c] = (withResidual ? residual[r * channels + c] : 0f) + bias[c];

        using var dY = Put(RandomFloats(rows * channels, 33), offset);  // stale values must be overwritten
        using var dResidual = Put(residual, offset);
        using var dBias = Put(bias, offset);
        BiasResidual.Launch(Device, dY.Span, withResidual ? dResidual.Span : default, dBias.Span, rows, channels);
        AssertBitEqual(dY.Read(), expected, "y");
    }

    [Test]
    public void BiasResidualRejectsYAliasingTheResidual()
    {
        using var y = Zeros<float>(12);
        using var bias = Zeros<float>(4);
        Assert.Throws<ArgumentException>(() => BiasResidual.Launch(Device, y.Span, y.Span, bias.Span, 3, 4));
    }
}

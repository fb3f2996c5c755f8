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
}

using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// kernels/activation.cu (ReLU, gated GELU) against Cpu/ReluOps (bit for bit, including −0 and NaN) and Cpu/GatedGeluOps (tanhf to a few
/// ulps): T5 v1.0's and v1.1's feed-forward activations.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class T5KernelActivationTests(DeviceKind kind) : KernelTestBase(kind)
{
    // Random values with exact zeros, negative zeros and a NaN sprinkled in (ReLU's edge cases).
    private static float[] WithEdges(int n, int seed)
    {
        float[] x = RandomFloats(n, seed, -3f, 3f);
        for (int i = 0; i < n; i += 7) x[i] = 0f;
        for (int i = 3; i < n; i += 11) x[i] = -0f;
        if (n > 5) x[5] = float.NaN;
        return x;
    }

    [TestCase(1, 0)]
    [TestCase(3, 0)]
    [TestCase(33, 0)]
    [TestCase(1000, 0)]
    [TestCase(4099, 0)]   // float4 body + 3-element tail
    [TestCase(4099, 1)]   // misaligned: scalar
    public void ReluForwardAndBackwardMatchTheCpuOpBitForBit(int n, int offset)
    {
        float[] x = WithEdges(n, n);
        float[] dy = RandomFloats(n, n + 1);
        var y = new float[n];
        var dx = new float[n];
        ReluOps.Forward<float>(y, x);
        ReluOps.Backward<float>(dx, dy, x);

        using var dX = Put(x, offset);
        using var dY = Put(RandomFloats(n, 3), offset);
        using var dDy = Put(dy, offset);
        using var dDx = Put(RandomFloats(n, 4), offset);
        ReluForward.Launch(Device, dY.Span, dX.Span);
        AssertBitEqual(dY.Read(), y, "y");
        ReluBackward.Launch(Device, dDx.Span, dDy.Span, dX.Span);
        AssertBitEqual(dDx.Read(), dx, "dx");
    }

    [TestCase(1001, 0)]
    [TestCase(1001, 3)]
    public void ReluRunsInPlace(int n, int offset)
    {
        float[] x = WithEdges(n, 7);
        float[] dy = RandomFloats(n, 8);
        var y = new float[n];
        var dx = new float[n];
        ReluOps.Forward<float>(y, x);
        ReluOps.Backward<float>(dx, dy, x);

        using var dX = Put(x, offset);
        using var inPlace = Put(x, offset);
        using var dDy = Put(dy, offset);
        ReluForward.Launch(Device, inPlace.Span, inPlace.Span);
        AssertBitEqual(inPlace.Read(), y, "y (in place)");
        ReluBackward.Launch(Device, dDy.Span, dDy.Span, dX.Span);
        AssertBitEqual(dDy.Read(), dx, "dx (in place over dy)");
    }

    [TestCase(1, 0)]
    [TestCase(3, 0)]
    [TestCase(33, 0)]
    [TestCase(1000, 0)]
    [TestCase(4099, 0)]
    [TestCase(4099, 1)]
    public void GatedGeluForwardAndBackwardMatchTheCpuOp(int n, int offset)
    {
        float[] gate = RandomFloats(n, n, -6f, 6f), linear = RandomFloats(n, n + 1, -2f, 2f), dy = RandomFloats(n, n + 2);
        var y = new float[n];
        var dGate = new float[n];
        var dLinear = new float[n];
        GatedGeluOps.Forward<float>(y, gate, linear);
        GatedGeluOps.Backward<float>(dGate, dLinear, dy, gate, linear);

        using var dG = Put(gate, offset);
        using var dL = Put(linear, offset);
        using var dDy = Put(dy, offset);
        using var dY = Put(RandomFloats(n, 5), offset);
        using var dDGate = Put(RandomFloats(n, 6), offset);
        using var dDLinear = Put(RandomFloats(n, 7), offset);
        GatedGeluForward.Launch(Device, dY.Span, dG.Span, dL.Span);
        AssertClose(dY.Read(), y, 1e-5, 1e-6, "y");
        GatedGeluBackward.Launch(Device, dDGate.Span, dDLinear.Span, dDy.Span, dG.Span, dL.Span);
        AssertClose(dDGate.Read(), dGate, 1e-5, 1e-6, "dGate");
        AssertClose(dDLinear.Read(), dLinear, 1e-5, 1e-6, "dLinear");
    }

    // The engine's in-place forms: y over gate; dGate over dy and dLinear over linear.
    [TestCase(1001, 0)]
    [TestCase(1001, 2)]
    public void GatedGeluRunsInPlace(int n, int offset)
    {
        float[] gate = RandomFloats(n, 11, -6f, 6f), linear = RandomFloats(n, 12, -2f, 2f), dy = RandomFloats(n, 13);
        var y = new float[n];
        var dGate = new float[n];
        var dLinear = new float[n];
        GatedGeluOps.Forward<float>(y, gate, linear);
        GatedGeluOps.Backward<float>(dGate, dLinear, dy, gate, linear);

        using var gateInPlace = Put(gate, offset);
        using var dL = Put(linear, offset);
        GatedGeluForward.Launch(Device, gateInPlace.Span, gateInPlace.Span, dL.Span);
        AssertClose(gateInPlace.Read(), y, 1e-5, 1e-6, "y (in place over gate)");

        using var dG = Put(gate, offset);
        using var dyThenDGate = Put(dy, offset);
        using var linearThenDLinear = Put(linear, offset);
        GatedGeluBackward.Launch(Device, dyThenDGate.Span, linearThenDLinear.Span, dyThenDGate.Span, dG.Span, linearThenDLinear.Span);
        AssertClose(dyThenDGate.Read(), dGate, 1e-5, 1e-6, "dGate (in place over dy)");
        AssertClose(linearThenDLinear.Read(), dLinear, 1e-5, 1e-6, "dLinear (in place over linear)");
    }

    [Test]
    public void LaunchersRejectShortSpans()
    {
        using var a = Zeros<float>(8);
        using var b = Zeros<float>(8);
        using var shortOne = Zeros<float>(7);
        Assert.That(() => ReluForward.Launch(Device, shortOne.Span, a.Span), Throws.ArgumentException.With.Message.Contains("y"));
        Assert.That(() => ReluBackward.Launch(Device, a.Span, shortOne.Span, b.Span), Throws.ArgumentException.With.Message.Contains("dy"));
        Assert.That(() => GatedGeluForward.Launch(Device, a.Span, b.Span, shortOne.Span), Throws.ArgumentException.With.Message.Contains("linear"));
        Assert.That(() => GatedGeluBackward.Launch(Device, a.Span, a.Span, b.Span, b.Span, b.Span), Throws.ArgumentException.With.Message.Contains("different buffers"));
    }
}

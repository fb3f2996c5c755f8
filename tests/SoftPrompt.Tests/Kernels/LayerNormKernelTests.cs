using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>kernels/norm.cu (LayerNorm) against Cpu/LayerNormOps (warp sums vs the CPU's order: fp32 tolerances).</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class LayerNormKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    private const float Epsilon = 1e-5f;

    // Row inputs with a non-zero mean (the two-pass variance matters) and per-row spread.
    private static float[] Rows(int rows, int channels, int seed)
    {
        float[] x = RandomFloats(rows * channels, seed, -2f, 2f);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++) x[r * channels + c] = 3f + (1 + r % 3) * x[r * channels + c];
        return x;
    }

    //       rows    C  offset   path
    [TestCase(1, 1, 0)]        // scalar, cached
    [TestCase(3, 3, 0)]
    [TestCase(5, 33, 0)]
    [TestCase(4, 100, 0)]      // float4, cached
    [TestCase(4, 100, 1)]      // scalar (misaligned), cached
    [TestCase(2, 769, 0)]
    [TestCase(9, 768, 0)]      // more than one block of 8 rows
    [TestCase(3, 1600, 0)]     // float4, 16 slots
    [TestCase(2, 2100, 0)]     // float4, streamed
    [TestCase(2, 1101, 0)]     // scalar, streamed
    public void ForwardMatchesTheCpuOp(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, rows + channels);
        float[] weight = RandomFloats(channels, 2, 0.5f, 1.5f), bias = RandomFloats(channels, 3);
        var y = new float[rows * channels];
        var mean = new float[rows];
        var rstd = new float[rows];
        LayerNormOps.Forward<float>(y, mean, rstd, x, weight, bias, rows, channels, Epsilon);

        using var dY = Zeros<float>(y.Length, offset);
        using var dMean = Zeros<float>(rows);
        using var dRstd = Zeros<float>(rows);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dB = Put(bias, offset);
        LayerNormForward.Launch(Device, dY.Span, dMean.Span, dRstd.Span, dX.Span, dW.Span, dB.Span, rows, channels, Epsilon);
        AssertClose(dY.Read(), y, 1e-5, 2e-5, "y");
        AssertClose(dMean.Read(), mean, 1e-5, 1e-6, "mean");
        AssertClose(dRstd.Read(), rstd, 1e-5, 0, "rstd");
    }

    [Test]
    public void ForwardWithoutSavedStatisticsWritesOnlyY()
    {
        const int rows = 3, channels = 40;
        float[] x = Rows(rows, channels, 5), weight = RandomFloats(channels, 6), bias = RandomFloats(channels, 7);
        var y = new float[rows * channels];
        LayerNormOps.Forward<float>(y, new float[rows], new float[rows], x, weight, bias, rows, channels, Epsilon);

        using var dY = Zeros<float>(y.Length);
        using var dX = Put(x);
        using var dW = Put(weight);
        using var dB = Put(bias);
        LayerNormForward.Launch(Device, dY.Span, default, default, dX.Span, dW.Span, dB.Span, rows, channels, Epsilon);
        AssertClose(dY.Read(), y, 1e-5, 2e-5, "y");
    }

    [TestCase(1, 1, 0)]
    [TestCase(3, 3, 0)]
    [TestCase(5, 33, 0)]
    [TestCase(4, 100, 0)]
    [TestCase(4, 100, 1)]
    [TestCase(2, 769, 0)]
    [TestCase(9, 768, 0)]
    [TestCase(3, 1600, 0)]     // float4, streamed (backward caches up to 1024)
    [TestCase(2, 1101, 0)]     // scalar, streamed
    public void BackwardAddsTheInputGradientIntoDx(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, 2 * rows + channels);
        float[] weight = RandomFloats(channels, 8, 0.5f, 1.5f), bias = RandomFloats(channels, 9);
        var mean = new float[rows];
        var rstd = new float[rows];
        LayerNormOps.Forward<float>(new float[rows * channels], mean, rstd, x, weight, bias, rows, channels, Epsilon);
        float[] dy = RandomFloats(rows * channels, 10);
        float[] dx = RandomFloats(rows * channels, 11);  // the residual stream's gradient so far
        float[] expected = (float[])dx.Clone();
        LayerNormOps.Backward<float>(expected, dy, x, weight, mean, rstd, rows, channels);

        using var dDx = Put(dx, offset);
        using var dDy = Put(dy, offset);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dMean = Put(mean);
        using var dRstd = Put(rstd);
        LayerNormBackward.Launch(Device, dDx.Span, dDy.Span, dX.Span, dW.Span, dMean.Span, dRstd.Span, rows, channels);
        AssertClose(dDx.Read(), expected, 1e-4, 2e-5, "dx");
    }

    [Test]
    public void BackwardRejectsDxAliasingDy()
    {
        using var buffer = Zeros<float>(8);
        using var x = Zeros<float>(8);
        using var weight = Zeros<float>(4);
        using var stats = Zeros<float>(2);
        var e = Assert.Throws<ArgumentException>(() => LayerNormBackward.Launch(Device, buffer.Span, buffer.Span, x.Span, weight.Span, stats.Span, stats.Span, 2, 4));
        Assert.That(e!.Message, Does.Contain("alias"));
    }
}

using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>kernels/norm.cu (RMS norm) against Cpu/RmsNormOps (warp sums vs the CPU's order: fp32 tolerances).</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class RmsNormKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    private const float Epsilon = 1e-6f;  // T5's layer_norm_epsilon

    // Rows with a non-zero mean and per-row spread (RMS norm does not center them).
    private static float[] Rows(int rows, int channels, int seed)
    {
        float[] x = RandomFloats(rows * channels, seed, -2f, 2f);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++) x[r * channels + c] = 0.5f + (1 + r % 3) * x[r * channels + c];
        return x;
    }

    //       rows    C  offset   path
    [TestCase(1, 1, 0)]        // scalar, cached
    [TestCase(3, 3, 0)]
    [TestCase(9, 32, 0)]       // float4, more than one block of 8 rows
    [TestCase(4, 100, 0)]      // float4, cached
    [TestCase(4, 100, 1)]      // scalar (misaligned), cached
    [TestCase(5, 768, 0)]      // T5-base width
    [TestCase(2, 768, 3)]
    [TestCase(3, 1600, 0)]     // float4, 16 slots
    [TestCase(2, 2100, 0)]     // float4, streamed
    [TestCase(2, 1101, 0)]     // scalar, streamed
    public void ForwardMatchesTheCpuOp(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, rows + channels);
        float[] weight = RandomFloats(channels, 2, 0.5f, 1.5f);
        var y = new float[rows * channels];
        var rstd = new float[rows];
        RmsNormOps.Forward<float>(y, rstd, x, weight, rows, channels, Epsilon);

        using var dY = Put(RandomFloats(y.Length, 4), offset);  // stale values must be overwritten
        using var dRstd = Zeros<float>(rows);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        RmsNormForward.Launch(Device, dY.Span, dRstd.Span, dX.Span, dW.Span, rows, channels, Epsilon);
        AssertClose(dY.Read(), y, 1e-5, 2e-5, "y");
        AssertClose(dRstd.Read(), rstd, 1e-5, 0, "rstd");
    }

    [TestCase(3, 40, 0)]
    [TestCase(3, 1101, 1)]     // streamed: each element is re-read before it is overwritten
    public void ForwardRunsInPlaceWithoutSavingRstd(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, 5), weight = RandomFloats(channels, 6);
        var y = new float[rows * channels];
        RmsNormOps.Forward<float>(y, new float[rows], x, weight, rows, channels, Epsilon);

        using var inPlace = Put(x, offset);
        using var dW = Put(weight);
        RmsNormForward.Launch(Device, inPlace.Span, default, inPlace.Span, dW.Span, rows, channels, Epsilon);
        AssertClose(inPlace.Read(), y, 1e-5, 2e-5, "y (in place over x)");
    }

    [TestCase(1, 1, 0)]
    [TestCase(3, 3, 0)]
    [TestCase(9, 32, 0)]
    [TestCase(4, 100, 0)]
    [TestCase(4, 100, 1)]
    [TestCase(5, 768, 0)]
    [TestCase(3, 1600, 0)]     // float4, streamed (backward caches up to 1024)
    [TestCase(2, 1101, 0)]     // scalar, streamed
    public void BackwardAddsTheInputGradientIntoDx(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, 2 * rows + channels);
        float[] weight = RandomFloats(channels, 8, 0.5f, 1.5f);
        var rstd = new float[rows];
        RmsNormOps.Forward<float>(new float[rows * channels], rstd, x, weight, rows, channels, Epsilon);
        float[] dy = RandomFloats(rows * channels, 10);
        float[] dx = RandomFloats(rows * channels, 11);  // the residual stream's gradient so far
        float[] expected = (float[])dx.Clone();
        RmsNormOps.Backward<float>(expected, dy, x, weight, rstd, rows, channels);

        using var dDx = Put(dx, offset);
        using var dDy = Put(dy, offset);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dRstd = Put(rstd);
        RmsNormBackward.Launch(Device, dDx.Span, dDy.Span, dX.Span, dW.Span, dRstd.Span, rows, channels);
        AssertClose(dDx.Read(), expected, 1e-4, 2e-5, "dx");
    }

    [Test]
    public void LaunchersRejectShortSpansAndAliasedGradients()
    {
        using var buffer = Zeros<float>(8);
        using var x = Zeros<float>(8);
        using var weight = Zeros<float>(4);
        using var stats = Zeros<float>(2);
        Assert.That(() => RmsNormBackward.Launch(Device, buffer.Span, buffer.Span, x.Span, weight.Span, stats.Span, 2, 4),
            Throws.ArgumentException.With.Message.Contains("alias"));
        Assert.That(() => RmsNormForward.Launch(Device, buffer.Span, stats.Span.Slice(0, 1), x.Span, weight.Span, 2, 4, Epsilon),
            Throws.ArgumentException.With.Message.Contains("rstd"));
        Assert.That(() => RmsNormForward.Launch(Device, buffer.Span, stats.Span, x.Span, weight.Span.Slice(0, 3), 2, 4, Epsilon),
            Throws.ArgumentException.With.Message.Contains("weight"));
    }
}

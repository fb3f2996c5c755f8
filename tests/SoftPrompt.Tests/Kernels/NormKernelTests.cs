using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

public enum NormKind { Layer, Rms }

/// <summary>
/// kernels/norm.cu against its CPU ops, every case for both kinds: LayerNorm vs Cpu/LayerNormOps (GPT-2) and RMSNorm vs
/// Cpu/RmsNormOps (T5, Llama). Warp sums vs the CPU's order: fp32 tolerances.
/// </summary>
[TestFixture(DeviceKind.Emulated, NormKind.Layer)]
[TestFixture(DeviceKind.Emulated, NormKind.Rms)]
[TestFixture(DeviceKind.Gpu, NormKind.Layer, Category = "Gpu")]
[TestFixture(DeviceKind.Gpu, NormKind.Rms, Category = "Gpu")]
public sealed class NormKernelTests(DeviceKind device, NormKind kind) : KernelTestBase(device)
{
    private float Epsilon => kind == NormKind.Layer ? 1e-5f : 1e-6f;  // GPT-2's and T5's

    // Rows with a non-zero mean (LayerNorm's two-pass variance matters; RMSNorm does not center) and per-row spread.
    private float[] Rows(int rows, int channels, int seed)
    {
        float[] x = RandomFloats(rows * channels, seed, -2f, 2f);
        float center = kind == NormKind.Layer ? 3f : 0.5f;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++) x[r * channels + c] = center + (1 + r % 3) * x[r * channels + c];
        return x;
    }

    // The CPU op: y, mean (LayerNorm only: empty for RMSNorm), rstd.
    private (float[] Y, float[] Mean, float[] Rstd) CpuForward(float[] x, float[] weight, float[] bias, int rows, int channels)
    {
        var y = new float[rows * channels];
        var mean = new float[kind == NormKind.Layer ? rows : 0];
        var rstd = new float[rows];
        if (kind == NormKind.Layer) LayerNormOps.Forward<float>(y, mean, rstd, x, weight, bias, rows, channels, Epsilon);
        else RmsNormOps.Forward<float>(y, rstd, x, weight, rows, channels, Epsilon);
        return (y, mean, rstd);
    }

    private void Forward(DeviceSpan<float> y, DeviceSpan<float> mean, DeviceSpan<float> rstd, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> bias, int rows, int channels)
    {
        if (kind == NormKind.Layer) LayerNormForward.Launch(Device, y, mean, rstd, x, weight, bias, rows, channels, Epsilon);
        else RmsNormForward.Launch(Device, y, rstd, x, weight, rows, channels, Epsilon);
    }

    //       rows    C  offset   path
    [TestCase(1, 1, 0)]        // scalar, cached
    [TestCase(3, 3, 0)]
    [TestCase(5, 33, 0)]
    [TestCase(9, 32, 0)]       // float4, more than one block of 8 rows
    [TestCase(4, 100, 0)]      // float4, cached
    [TestCase(4, 100, 1)]      // scalar (misaligned), cached
    [TestCase(2, 769, 0)]
    [TestCase(9, 768, 0)]
    [TestCase(2, 768, 3)]
    [TestCase(3, 1600, 0)]     // float4, 16 slots
    [TestCase(2, 2100, 0)]     // float4, streamed
    [TestCase(2, 1101, 0)]     // scalar, streamed
    public void ForwardMatchesTheCpuOp(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, rows + channels);
        float[] weight = RandomFloats(channels, 2, 0.5f, 1.5f), bias = RandomFloats(channels, 3);
        var (y, mean, rstd) = CpuForward(x, weight, bias, rows, channels);

        using var dY = Put(RandomFloats(y.Length, 4), offset);  // stale values must be overwritten
        using var dMean = Zeros<float>(mean.Length);
        using var dRstd = Zeros<float>(rows);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dB = Put(bias, offset);
        Forward(dY.Span, dMean.Span, dRstd.Span, dX.Span, dW.Span, dB.Span, rows, channels);
        AssertClose(dY.Read(), y, 1e-5, 2e-5, "y");
        AssertClose(dMean.Read(), mean, 1e-5, 1e-6, "mean");
        AssertClose(dRstd.Read(), rstd, 1e-5, 0, "rstd");
    }

    // Inference: no statistics saved. RMSNorm runs in place too; LayerNorm's launcher refuses y over x (its backward needs x).
    [TestCase(3, 40, 0)]
    [TestCase(3, 1101, 1)]     // streamed: each element is re-read before it is overwritten
    public void ForwardWithoutSavedStatistics(int rows, int channels, int offset)
    {
        float[] x = Rows(rows, channels, 5), weight = RandomFloats(channels, 6), bias = RandomFloats(channels, 7);
        float[] y = CpuForward(x, weight, bias, rows, channels).Y;

        using var dY = Zeros<float>(y.Length, offset);
        using var dX = Put(x, offset);
        using var dW = Put(weight);
        using var dB = Put(bias);
        Forward(dY.Span, default, default, dX.Span, dW.Span, dB.Span, rows, channels);
        AssertClose(dY.Read(), y, 1e-5, 2e-5, "y");

        if (kind == NormKind.Layer)
            Assert.That(() => Forward(dX.Span, default, default, dX.Span, dW.Span, dB.Span, rows, channels), Throws.ArgumentException.With.Message.Contains("alias"));
        else
        {
            Forward(dX.Span, default, default, dX.Span, dW.Span, dB.Span, rows, channels);
            AssertClose(dX.Read(), y, 1e-5, 2e-5, "y (in place over x)");
        }
    }

    [TestCase(1, 1, 0)]
    [TestCase(3, 3, 0)]
    [TestCase(5, 33, 0)]
    [TestCase(9, 32, 0)]
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
        var (_, mean, rstd) = CpuForward(x, weight, bias, rows, channels);
        float[] dy = RandomFloats(rows * channels, 10);
        float[] dx = RandomFloats(rows * channels, 11);  // the residual stream's gradient so far
        float[] expected = (float[])dx.Clone();
        if (kind == NormKind.Layer) LayerNormOps.Backward<float>(expected, dy, x, weight, mean, rstd, rows, channels);
        else RmsNormOps.Backward<float>(expected, dy, x, weight, rstd, rows, channels);

        using var dDx = Put(dx, offset);
        using var dDy = Put(dy, offset);
        using var dX = Put(x, offset);
        using var dW = Put(weight, offset);
        using var dMean = Put(mean);
        using var dRstd = Put(rstd);
        if (kind == NormKind.Layer) LayerNormBackward.Launch(Device, dDx.Span, dDy.Span, dX.Span, dW.Span, dMean.Span, dRstd.Span, rows, channels);
        else RmsNormBackward.Launch(Device, dDx.Span, dDy.Span, dX.Span, dW.Span, dRstd.Span, rows, channels);
        AssertClose(dDx.Read(), expected, 1e-4, 2e-5, "dx");
    }

    [Test]
    public void LaunchersRejectShortSpansAndAliasedGradients()
    {
        using var buffer = Zeros<float>(8);
        using var x = Zeros<float>(8);
        using var weight = Zeros<float>(4);
        using var stats = Zeros<float>(2);
        Assert.That(() =>
            {
                if (kind == NormKind.Layer) LayerNormBackward.Launch(Device, buffer.Span, buffer.Span, x.Span, weight.Span, stats.Span, stats.Span, 2, 4);
                else RmsNormBackward.Launch(Device, buffer.Span, buffer.Span, x.Span, weight.Span, stats.Span, 2, 4);
            },
            Throws.ArgumentException.With.Message.Contains("alias"));
        Assert.That(() => Forward(buffer.Span, default, stats.Span.Slice(0, 1), x.Span, weight.Span, weight.Span, 2, 4),
            Throws.ArgumentException.With.Message.Contains("rstd"));
        Assert.That(() => Forward(buffer.Span, default, stats.Span, x.Span, weight.Span.Slice(0, 3), weight.Span, 2, 4),
            Throws.ArgumentException.With.Message.Contains("weight"));
    }
}

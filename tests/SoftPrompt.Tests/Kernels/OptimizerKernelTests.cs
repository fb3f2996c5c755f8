using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// kernels/optimizer.cu against Cpu/OptimizerOps and AdafactorOps over several steps, with the clip scale computed on
/// the device by GradientNorm exactly as CpuGpt2Engine.OptimizerStep computes it on the host.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class OptimizerKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    private const int Steps = 4;

    /// <summary>The CPU engine's norm and step scale (CpuGpt2Engine.OptimizerStep).</summary>
    private static (float Norm, float Scale) CpuScale(float[] gradient, float gradientScale, float clipNorm)
    {
        float norm = OptimizerOps.GlobalNorm<float>(gradient) * MathF.Abs(gradientScale);
        float scale = gradientScale;
        if (clipNorm > 0 && norm > clipNorm) scale *= clipNorm / norm;
        return (norm, scale);
    }

    /// <summary>Runs GradientNorm on the device; returns (norm, scale) as read back, leaving them in scratch.</summary>
    private (float Norm, float Scale) DeviceScale(DeviceArray<float> scratch, DeviceArray<float> gradient, float gradientScale, float clipNorm)
    {
        GradientNorm.Launch(Device, scratch.Span, gradient.Span, gradientScale, clipNorm);
        float[] s = scratch.Read();
        return (s[GradientNorm.NormOffset], s[GradientNorm.ScaleOffset]);
    }

    //          n  offset  scale   clip
    [TestCase(1, 0, 1f, 0f)]
    [TestCase(3, 1, 0.5f, 0f)]
    [TestCase(1000, 0, 1f, 1e9f)]       // clip above the norm: no clipping
    [TestCase(4099, 0, 2f, 1f)]         // clipped
    [TestCase(70_001, 0, 0.25f, 0.1f)]  // several partials, clipped
    [TestCase(70_001, 1, -0.25f, 0f)]   // misaligned; a negative loss scale
    public void GradientNormAndClipScaleMatchTheCpuEngine(int n, int offset, float gradientScale, float clipNorm)
    {
        float[] g = RandomFloats(n, n, -2f, 2f);
        var (norm, scale) = CpuScale(g, gradientScale, clipNorm);
        using var dG = Put(g, offset);
        using var scratch = Put(Enumerable.Repeat(float.NaN, GradientNorm.ScratchLength).ToArray());
        var (deviceNorm, deviceScale) = DeviceScale(scratch, dG, gradientScale, clipNorm);
        Assert.That(deviceNorm, Is.EqualTo(norm).Within(1e-5 * norm + 1e-7));
        Assert.That(deviceScale, Is.EqualTo(scale).Within(2e-5 * Math.Abs(scale)));
        var again = DeviceScale(scratch, dG, gradientScale, clipNorm);
        AssertBitEqual([again.Norm, again.Scale], [deviceNorm, deviceScale], "second run");
    }

    [TestCase(1, 0, 0f, 0f)]
    [TestCase(1001, 0, 0.01f, 0f)]
    [TestCase(1001, 1, 0.01f, 0.5f)]   // misaligned, clipped
    public void SgdStepsMatchTheCpuOp(int n, int offset, float weightDecay, float clipNorm)
    {
        const float learningRate = 0.1f, gradientScale = 0.5f;
        float[] p = RandomFloats(n, 41);
        float[] expected = (float[])p.Clone();
        using var dP = Put(p, offset);
        using var dG = Zeros<float>(n, offset);
        using var scratch = Zeros<float>(GradientNorm.ScratchLength);
        for (int step = 1; step <= Steps; step++)
        {
            float[] g = RandomFloats(n, 100 + step, -3f, 3f);
            var (_, scale) = CpuScale(g, gradientScale, clipNorm);
            OptimizerOps.SgdStep<float>(expected, g, learningRate, weightDecay, scale);
            dG.Write(g);
            GradientNorm.Launch(Device, scratch.Span, dG.Span, gradientScale, clipNorm);
            SgdStep.Launch(Device, dP.Span, dG.Span, scratch.Span.Slice(GradientNorm.ScaleOffset, 1), learningRate, weightDecay);
        }
        AssertClose(dP.Read(), expected, 1e-5, 1e-6, "parameters");
    }

    [TestCase(1, 0, 0f, 0f)]
    [TestCase(1001, 0, 0.01f, 0f)]
    [TestCase(1001, 3, 0.01f, 0.5f)]   // misaligned, clipped
    [TestCase(4096, 0, 0f, 1f)]
    public void AdamWStepsMatchTheCpuOp(int n, int offset, float weightDecay, float clipNorm)
    {
        const float learningRate = 0.01f, beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f, gradientScale = 0.5f;
        float[] p = RandomFloats(n, 51);
        float[] expected = (float[])p.Clone();
        var m = new float[n];
        var v = new float[n];
        using var dP = Put(p, offset);
        using var dG = Zeros<float>(n, offset);
        using var dM = Zeros<float>(n, offset);
        using var dV = Zeros<float>(n, offset);
        using var scratch = Zeros<float>(GradientNorm.ScratchLength);
        for (int step = 1; step <= Steps; step++)
        {
            float[] g = RandomFloats(n, 200 + step, -3f, 3f);
            var (_, scale) = CpuScale(g, gradientScale, clipNorm);
            OptimizerOps.AdamWStep<float>(expected, g, m, v, learningRate, beta1, beta2, epsilon, weightDecay, step, scale);
            dG.Write(g);
            GradientNorm.Launch(Device, scratch.Span, dG.Span, gradientScale, clipNorm);
            AdamWStep.Launch(Device, dP.Span, dG.Span, dM.Span, dV.Span, scratch.Span.Slice(GradientNorm.ScaleOffset, 1),
                learningRate, beta1, beta2, epsilon, weightDecay, step);
        }
        AssertClose(dP.Read(), expected, 1e-5, 1e-6, "parameters");
        AssertClose(dM.Read(), m, 1e-4, 1e-7, "first moment");
        AssertClose(dV.Read(), v, 1e-4, 1e-9, "second moment");
    }

    //        K  rows cols  clipThreshold weightDecay clipNorm
    [TestCase(1, 1, 1, 1f, 0f, 0f)]
    [TestCase(3, 5, 33, 1f, 0.01f, 0f)]
    [TestCase(2, 4, 100, 0.3f, 0f, 1f)]     // update clipping (RMS) and gradient-norm clipping
    [TestCase(1, 3, 769, 1f, 0f, 0f)]
    [TestCase(2, 20, 64, 1f, 0f, 0f)]
    public void AdafactorStepsMatchTheCpuOpOnEachPrompt(int promptCount, int rows, int cols, float clipThreshold, float weightDecay, float clipNorm)
    {
        const float learningRate = 0.3f, decayRate = -0.8f, epsilon = 1e-30f, gradientScale = 0.5f;
        int size = rows * cols, n = promptCount * size;
        float[] p = RandomFloats(n, 61);
        float[] expected = (float[])p.Clone();
        var rowState = new float[promptCount * rows];
        var colState = new float[promptCount * cols];
        using var dP = Put(p);
        using var dG = Zeros<float>(n);
        using var dRow = Zeros<float>(rowState.Length);
        using var dCol = Zeros<float>(colState.Length);
        using var scratch = Zeros<float>(GradientNorm.ScratchLength);
        for (int step = 1; step <= Steps; step++)
        {
            float[] g = RandomFloats(n, 300 + step, -3f, 3f);
            if (step == 2) g[0] = 200f;  // one outlier: the factored estimate underestimates it, the update is clipped
            var (_, scale) = CpuScale(g, gradientScale, clipNorm);
            for (int k = 0; k < promptCount; k++)
                AdafactorOps.Step<float>(expected.AsSpan(k * size, size), g.AsSpan(k * size, size), rowState.AsSpan(k * rows, rows),
                    colState.AsSpan(k * cols, cols), rows, cols, learningRate, decayRate, clipThreshold, epsilon, weightDecay, step, scale);
            dG.Write(g);
            GradientNorm.Launch(Device, scratch.Span, dG.Span, gradientScale, clipNorm);
            AdafactorStep.Launch(Device, dP.Span, dG.Span, dRow.Span, dCol.Span, scratch.Span.Slice(GradientNorm.ScaleOffset, 1),
                promptCount, rows, cols, learningRate, decayRate, clipThreshold, epsilon, weightDecay, step);
        }
        AssertClose(dRow.Read(), rowState, 1e-4, 0, "row state");
        AssertClose(dCol.Read(), colState, 1e-4, 0, "column state");
        AssertClose(dP.Read(), expected, 1e-4, 1e-5, "parameters");
    }
}

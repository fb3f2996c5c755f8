using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Tests.Engines;

/// <summary>The CPU engine against PyTorch autograd (fixtures from tools/reference/gpt2_reference.py).</summary>
public sealed class CpuEngineParityTests
{
    [TestCaseSource(typeof(Gpt2Fixture), nameof(Gpt2Fixture.Cases))]
    public void Float32MatchesPyTorch(string model, string caseName)
    {
        var fixture = Gpt2Fixture.Load(model, caseName);
        using var engine = new CpuGpt2Engine<float>(Gpt2Checkpoint.Load<float>(fixture.ModelDirectory));
        fixture.AssertEngineMatches(engine, (batch, logits) => engine.Logits(batch, logits), lossTolerance: 1e-4, gradientTolerance: 1e-3);
    }

    [TestCaseSource(typeof(Gpt2Fixture), nameof(Gpt2Fixture.Cases))]
    public void Float64MatchesPyTorchFloat64(string model, string caseName)
    {
        var fixture = Gpt2Fixture.Load(model, caseName);
        using var engine = new CpuGpt2Engine<double>(Gpt2Checkpoint.Load<double>(fixture.ModelDirectory));
        engine.LoadPrompts(fixture.Prompts.Select(v => (double)v).ToArray(), fixture.PromptCount, fixture.PromptLength);
        double loss = engine.LossAndGradient(fixture.Batch());
        Assert.That(Math.Abs(loss - fixture.LossF64) / Math.Abs(fixture.LossF64), Is.LessThan(1e-10), "loss relative error (fp64)");
        Assert.That(Gpt2Fixture.RelativeError(engine.PromptGradient, fixture.PromptGradientF64), Is.LessThan(1e-9), "prompt gradient relative error (fp64)");
    }
}

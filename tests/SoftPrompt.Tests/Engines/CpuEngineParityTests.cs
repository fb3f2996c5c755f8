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
        engine.LoadPrompts(fixture.Prompts.AsSpan(), fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();

        var logits = new float[fixture.Logits.Length];
        engine.Logits(batch, logits);
        double worstLogit = 0;
        int vocab = engine.VocabSize;
        for (int position = 0; position < fixture.PositionMask.Length; position++)
        {
            if (fixture.PositionMask[position] == 0) continue;
            for (int v = 0; v < vocab; v++)
                worstLogit = Math.Max(worstLogit, Math.Abs(logits[position * vocab + v] - fixture.Logits[position * vocab + v]));
        }
        Assert.That(worstLogit, Is.LessThan(1e-4), "max |logit − PyTorch| over real positions");

        float loss = engine.ForwardBackward(batch);
        Assert.That(Math.Abs(loss - fixture.Loss) / Math.Abs(fixture.Loss), Is.LessThanOrEqualTo(1e-4), "loss relative error");
        var gradient = new float[fixture.PromptGradient.Length];
        engine.ReadPromptGradient(gradient);
        Assert.That(Gpt2Fixture.RelativeError<float>(gradient, fixture.PromptGradient), Is.LessThanOrEqualTo(1e-3), "prompt gradient relative error");
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

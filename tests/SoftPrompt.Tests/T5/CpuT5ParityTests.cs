using SoftPrompt.Engines;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tests.T5;

/// <summary>The CPU T5 engine against PyTorch autograd (fixtures from tools/reference/t5_reference.py).</summary>
public sealed class CpuT5ParityTests
{
    [TestCaseSource(typeof(T5Fixture), nameof(T5Fixture.Cases))]
    public void Float32MatchesPyTorch(string model, string caseName)
    {
        var fixture = T5Fixture.Load(model, caseName);
        using var engine = new CpuT5Engine<float>(T5Checkpoint.Load<float>(fixture.ModelDirectory));
        engine.LoadPrompts(fixture.Prompts.AsSpan(), fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();

        var logits = new float[fixture.Logits.Length];
        engine.Logits(batch, logits);
        Assert.That(engine.DecoderLength, Is.EqualTo(fixture.DecoderLength));
        double logitError = fixture.WorstLogitError<float>(logits, fixture.Logits, engine.VocabSize);
        Assert.That(logitError, Is.LessThan(1e-4), "max |logit − PyTorch| over target positions");

        float loss = engine.ForwardBackward(batch);
        double lossError = Math.Abs(loss - fixture.Loss) / Math.Abs(fixture.Loss);
        Assert.That(lossError, Is.LessThanOrEqualTo(1e-4), "loss relative error");
        var gradient = new float[fixture.PromptGradient.Length];
        engine.ReadPromptGradient(gradient);
        double gradientError = T5Fixture.RelativeError<float>(gradient, fixture.PromptGradient);
        Assert.That(gradientError, Is.LessThanOrEqualTo(1e-3), "prompt gradient relative error");
        TestContext.Progress.WriteLine($"{model}/{caseName} fp32: logits {logitError:E1}, loss {lossError:E1}, gradient {gradientError:E1}");
    }

    [TestCaseSource(typeof(T5Fixture), nameof(T5Fixture.Cases))]
    public void Float64MatchesPyTorchFloat64(string model, string caseName)
    {
        var fixture = T5Fixture.Load(model, caseName);
        using var engine = new CpuT5Engine<double>(T5Checkpoint.Load<double>(fixture.ModelDirectory));
        engine.LoadPrompts(fixture.Prompts.Select(v => (double)v).ToArray(), fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();
        var logits = new double[fixture.LogitsF64.Length];
        engine.Logits(batch, logits);
        double logitError = fixture.WorstLogitError<double>(logits, fixture.LogitsF64, engine.VocabSize);
        Assert.That(logitError, Is.LessThan(1e-9), "max |logit − PyTorch| (fp64)");
        double loss = engine.LossAndGradient(batch);
        double lossError = Math.Abs(loss - fixture.LossF64) / Math.Abs(fixture.LossF64);
        Assert.That(lossError, Is.LessThan(1e-9), "loss relative error (fp64)");
        double gradientError = T5Fixture.RelativeError(engine.PromptGradient, fixture.PromptGradientF64);
        Assert.That(gradientError, Is.LessThan(1e-9), "prompt gradient relative error (fp64)");
        TestContext.Progress.WriteLine($"{model}/{caseName} fp64: logits {logitError:E1}, loss {lossError:E1}, gradient {gradientError:E1}");
    }

    [Test]
    public void FactoryOpensTheFixtureOnTheCpuAndTheEmulatedCudaEngine()
    {
        string dir = Path.Combine(T5Fixture.Root, "v1_1");
        using (var loaded = EngineFactory.Open(dir, "cpu"))
        {
            Assert.That(loaded.Engine, Is.TypeOf<CpuT5Engine<float>>());
            Assert.That(loaded.Family.Name, Is.EqualTo("t5"));
            Assert.That(loaded.Config.Embedding, Is.EqualTo(32));
            Assert.That(loaded.Engine.MaxPositions, Is.EqualTo(T5Config.DefaultMaxPositions));
            Assert.That(loaded.Fingerprint, Has.Length.EqualTo(16));
        }
        using (var emulated = EngineFactory.Open(dir, "cuda-emulated"))
        {
            Assert.That(emulated.Engine, Is.TypeOf<CudaT5Engine>());
            Assert.That(emulated.Engine.DeviceName, Is.EqualTo("cuda-emulated"));
            Assert.That(emulated.Family.Name, Is.EqualTo("t5"));
        }
        if (!EngineFactory.DefaultDevice.Equals("cuda"))
        {
            var error = Assert.Throws<InvalidOperationException>(() => EngineFactory.Open(dir, "cuda"))!;
            Assert.That(error.Message, Does.StartWith("`device` cuda:"));
        }
        using var v10 = EngineFactory.Open(Path.Combine(T5Fixture.Root, "v1_0"), "cpu");
        Assert.That(v10.Engine.MaxPositions, Is.EqualTo(512), "n_positions from config.json");
    }
}

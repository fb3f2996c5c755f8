using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>The CUDA engine (kernels + GEMMs) against the PyTorch fixtures and the CPU engine, on the emulator and on a GPU.</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class CudaEngineParityTests(DeviceKind kind)
{
    private CudaGpt2Engine Open(Gpt2Weights<float> weights) => new(TestDevices.Open(kind), weights, ownsDevice: true);

    [TestCaseSource(typeof(Gpt2Fixture), nameof(Gpt2Fixture.Cases))]
    public void MatchesPyTorch(string model, string caseName)
    {
        var fixture = Gpt2Fixture.Load(model, caseName);
        using var engine = Open(Gpt2Checkpoint.Load<float>(fixture.ModelDirectory));
        fixture.AssertEngineMatches(engine, (batch, logits) => engine.Logits(batch, logits), lossTolerance: 1e-4, gradientTolerance: 1e-3);
    }

    [TestCase(OptimizerKind.Sgd)]
    [TestCase(OptimizerKind.AdamW)]
    [TestCase(OptimizerKind.Adafactor)]
    public void TrainsLikeTheCpuEngine(OptimizerKind optimizer)
    {
        var config = TestModels.TinyConfig(vocab: 40, positions: 24, embedding: 24, layers: 2, heads: 3, inner: 40);
        var weights = TestModels.Random<float>(config, seed: 12);
        var prompts = TestModels.RandomPrompts<float>(2 * 3 * config.Embedding, seed: 8);
        using var cpu = new CpuGpt2Engine<float>(weights);
        using var cuda = Open(weights);
        var settings = new OptimizerSettings(optimizer, ClipNorm: 0.8f, WeightDecay: 0.01f);
        var batch = TestModels.MixedBatch(3, 2, config.VocabSize);
        foreach (IPromptEngine engine in new IPromptEngine[] { cpu, cuda })
        {
            engine.LoadPrompts(prompts, 2, 3);
            for (int step = 1; step <= 4; step++)
            {
                engine.ForwardBackward(batch);
                engine.OptimizerStep(settings, step, 0.05f);
            }
        }
        var expected = new float[prompts.Length];
        var actual = new float[prompts.Length];
        cpu.ReadPrompts(expected);
        cuda.ReadPrompts(actual);
        Assert.That(Gpt2Fixture.RelativeError<float>(actual, expected), Is.LessThan(1e-4));
        Assert.That(cuda.LastGradientNorm, Is.EqualTo(cpu.LastGradientNorm).Within(1e-3).Percent);
    }

    [Test]
    public void RowScoresAndGreedyMatchesAgreeWithTheCpuEngine()
    {
        var config = TestModels.TinyConfig();
        var weights = TestModels.Random<float>(config, seed: 21);
        var prompts = TestModels.RandomPrompts<float>(2 * 2 * config.Embedding, seed: 2);
        using var cpu = new CpuGpt2Engine<float>(weights);
        using var cuda = Open(weights);
        var batch = TestModels.MixedBatch(2, 2, config.VocabSize);
        var expectedScores = new float[batch.Rows];
        var actualScores = new float[batch.Rows];
        var expectedMatches = new int[batch.Rows];
        var actualMatches = new int[batch.Rows];
        cpu.LoadPrompts(prompts, 2, 2);
        cuda.LoadPrompts(prompts, 2, 2);
        cpu.ScoreRows(batch, expectedScores, expectedMatches);
        cuda.ScoreRows(batch, actualScores, actualMatches);
        Assert.That(actualScores, Is.EqualTo(expectedScores).Within(1e-4));
        Assert.That(actualMatches, Is.EqualTo(expectedMatches));
    }

    [Test]
    public void PromptGradientIsBitReproducible()
    {
        var fixture = Gpt2Fixture.Load("tiny", "case-b");
        using var engine = Open(Gpt2Checkpoint.Load<float>(fixture.ModelDirectory));
        engine.LoadPrompts(fixture.Prompts, fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();
        var first = new float[fixture.PromptGradient.Length];
        var second = new float[first.Length];
        engine.ForwardBackward(batch);
        engine.ReadPromptGradient(first);
        engine.ForwardBackward(batch);
        engine.ReadPromptGradient(second);
        Assert.That(second, Is.EqualTo(first));
    }
}

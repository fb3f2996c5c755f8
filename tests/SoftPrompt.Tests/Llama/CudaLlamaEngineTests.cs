using SoftPrompt.Engines;
using SoftPrompt.Models.Llama;
using SoftPrompt.Tests.Emulation;
using SoftPrompt.Tests.Engines;

namespace SoftPrompt.Tests.Llama;

/// <summary>The CUDA Llama engine (kernels + GEMMs) against the PyTorch fixtures and the CPU engine, on the emulator and on a GPU.</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class CudaLlamaEngineTests(DeviceKind kind)
{
    private static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "llama");

    private CudaLlamaEngine Open(LlamaWeights<float> weights) => new(TestDevices.Open(kind), weights, ownsDevice: true);

    [TestCaseSource(typeof(CpuLlamaParityTests), nameof(CpuLlamaParityTests.Cases))]
    public void MatchesPyTorch(string model, string caseName)
    {
        var fixture = Gpt2Fixture.LoadFrom(Path.Combine(Root, model), caseName);
        using var engine = Open(LlamaCheckpoint.Load<float>(fixture.ModelDirectory));
        fixture.AssertEngineMatches(engine, (batch, logits) => engine.Logits(batch, logits), lossTolerance: 1e-5, gradientTolerance: 1e-4);
    }

    [TestCase(OptimizerKind.Sgd)]
    [TestCase(OptimizerKind.AdamW)]
    [TestCase(OptimizerKind.Adafactor)]
    public void TrainsLikeTheCpuEngine(OptimizerKind optimizer)
    {
        var config = LlamaTestModels.TinyConfig();
        var weights = LlamaTestModels.Random<float>(config, seed: 12);
        var layout = new PromptLayout([3, 5]);
        var prompts = TestModels.RandomPrompts<float>(layout.ValueCount(config.Embedding), seed: 8);
        using var cpu = new CpuLlamaEngine<float>(weights);
        using var cuda = Open(weights);
        var settings = new OptimizerSettings(optimizer, ClipNorm: 0.8f, WeightDecay: 0.01f);
        var batch = new TokenBatch(4, 8, layout);
        batch.Reset(7);
        batch.AddRow([1, 5, 7], [2, 9], 0);
        batch.AddRow([], [4, 4, config.VocabSize - 1], 1);
        batch.AddRow([3, 3, 8, 11, 0], [6, 2], 0);
        batch.AddRow([10], [1], 1);
        foreach (IPromptEngine engine in new IPromptEngine[] { cpu, cuda })
        {
            engine.LoadPrompts(prompts, layout);
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
    public void RowScoresGreedyMatchesAndNextTokenLogitsAgreeWithTheCpuEngine()
    {
        var config = LlamaTestModels.TinyConfig(tied: true, keyValueHeads: 3);
        var weights = LlamaTestModels.Random<float>(config, seed: 21);
        var prompts = TestModels.RandomPrompts<float>(2 * 2 * config.Embedding, seed: 2);
        using var cpu = new CpuLlamaEngine<float>(weights);
        using var cuda = Open(weights);
        var batch = TestModels.MixedBatch(2, 2, config.VocabSize);
        var expectedScores = new float[batch.Rows];
        var actualScores = new float[batch.Rows];
        var expectedMatches = new int[batch.Rows];
        var actualMatches = new int[batch.Rows];
        var expectedLogits = new float[batch.Rows * config.VocabSize];
        var actualLogits = new float[batch.Rows * config.VocabSize];
        cpu.LoadPrompts(prompts, 2, 2);
        cuda.LoadPrompts(prompts, 2, 2);
        cpu.ScoreRows(batch, expectedScores, expectedMatches);
        cuda.ScoreRows(batch, actualScores, actualMatches);
        cpu.NextTokenLogits(batch, expectedLogits);
        cuda.NextTokenLogits(batch, actualLogits);
        Assert.That(actualScores, Is.EqualTo(expectedScores).Within(1e-4));
        Assert.That(actualMatches, Is.EqualTo(expectedMatches));
        Assert.That(actualLogits, Is.EqualTo(expectedLogits).Within(1e-4));
    }

    [Test]
    public void PromptGradientIsBitReproducible()
    {
        var fixture = Gpt2Fixture.LoadFrom(Path.Combine(Root, "tiny"), "case-b");
        using var engine = Open(LlamaCheckpoint.Load<float>(fixture.ModelDirectory));
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

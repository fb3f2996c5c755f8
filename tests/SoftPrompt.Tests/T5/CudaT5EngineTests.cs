using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.T5;

/// <summary>The CUDA T5 engine (kernels + GEMMs) against the PyTorch fixtures and the CPU T5 engine, on the emulator and on a GPU.</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class CudaT5EngineTests(DeviceKind kind)
{
    private CudaT5Engine Open(T5Weights<float> weights) => new(TestDevices.Open(kind), weights, ownsDevice: true);

    [TestCaseSource(typeof(T5Fixture), nameof(T5Fixture.Cases))]
    public void MatchesPyTorch(string model, string caseName)
    {
        var fixture = T5Fixture.Load(model, caseName);
        using var engine = Open(T5Checkpoint.Load<float>(fixture.ModelDirectory));
        engine.LoadPrompts(fixture.Prompts, fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();

        var logits = new float[fixture.Logits.Length];
        engine.DecoderLogits(batch, logits);
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
        TestContext.Progress.WriteLine($"{model}/{caseName} {kind}: logits {logitError:E1}, loss {lossError:E1}, gradient {gradientError:E1}");
    }

    [TestCase(false, OptimizerKind.AdamW)]
    [TestCase(true, OptimizerKind.AdamW)]
    [TestCase(false, OptimizerKind.Adafactor)]
    [TestCase(true, OptimizerKind.Adafactor)]
    [TestCase(true, OptimizerKind.Sgd)]
    public void TrainsLikeTheCpuEngine(bool gated, OptimizerKind optimizer)
    {
        var config = CpuT5GradientTests.TinyConfig(gated);
        var weights = T5Weights<float>.CreateRandom(config, seed: 12);
        var prompts = TestModels.RandomPrompts<float>(2 * 3 * config.Embedding, seed: 8);
        using var cpu = new CpuT5Engine<float>(weights);
        using var cuda = Open(weights);
        var settings = new OptimizerSettings(optimizer, ClipNorm: 0.8f, WeightDecay: 0.01f);
        var batch = TestModels.MixedBatch(3, 2, config.VocabSize);
        var losses = new List<float>[] { [], [] };
        var norms = new List<float>[] { [], [] };
        int e = 0;
        foreach (IPromptEngine engine in new IPromptEngine[] { cpu, cuda })
        {
            engine.LoadPrompts(prompts, 2, 3);
            for (int step = 1; step <= 4; step++)
            {
                losses[e].Add(engine.ForwardBackward(batch));
                engine.OptimizerStep(settings, step, 0.05f);
                norms[e].Add(engine.LastGradientNorm);
            }
            e++;
        }
        Assert.That(losses[1], Is.EqualTo(losses[0]).Within(1e-2).Percent, "losses step by step (1e-4 relative)");
        var expected = new float[prompts.Length];
        var actual = new float[prompts.Length];
        cpu.ReadPrompts(expected);
        cuda.ReadPrompts(actual);
        Assert.That(T5Fixture.RelativeError<float>(actual, expected), Is.LessThan(1e-4));
        // The first step's gradient comes from identical prompts; later ones from prompts that already differ by rounding
        // (Adafactor's relative step makes the norm of this tiny random model drift a little more than the prompts do).
        Assert.That(norms[1][0], Is.EqualTo(norms[0][0]).Within(1e-3).Percent, "first gradient norm");
        Assert.That(norms[1], Is.EqualTo(norms[0]).Within(5e-2).Percent, "gradient norms step by step");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void RowScoresGreedyMatchesAndAccumulationAgreeWithTheCpuEngine(bool gated)
    {
        var config = CpuT5GradientTests.TinyConfig(gated);
        var weights = T5Weights<float>.CreateRandom(config, seed: 21);
        var prompts = TestModels.RandomPrompts<float>(2 * 2 * config.Embedding, seed: 2);
        using var cpu = new CpuT5Engine<float>(weights);
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

        cpu.ForwardBackward(batch);
        cpu.ForwardBackward(batch, accumulate: true, gradientWeight: 0.5f);
        cuda.ForwardBackward(batch);
        cuda.ForwardBackward(batch, accumulate: true, gradientWeight: 0.5f);
        var expected = new float[prompts.Length];
        var actual = new float[prompts.Length];
        cpu.ReadPromptGradient(expected);
        cuda.ReadPromptGradient(actual);
        Assert.That(T5Fixture.RelativeError<float>(actual, expected), Is.LessThan(1e-4));
    }

    [Test]
    public void PromptGradientIsBitReproducible()
    {
        var fixture = T5Fixture.Load("v1_1", "case-b");
        using var engine = Open(T5Checkpoint.Load<float>(fixture.ModelDirectory));
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

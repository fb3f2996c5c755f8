using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>Greedy decoding on the bundled demo model, checked against teacher-forced exact match and across devices.</summary>
public sealed class GreedyDecoderTests
{
    private static string Demo => Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo");

    private static float[] TaskTokenPrompt(LoadedModel model, int taskToken)
    {
        int width = model.Config.Embedding;
        var prompt = new float[4 * width];
        for (int p = 0; p < 4; p++) model.TokenEmbedding.AsSpan((p == 3 ? taskToken : 17) * width, width).CopyTo(prompt.AsSpan(p * width, width));
        return prompt;
    }

    [Category("Slow")]
    [Test]
    public void DecodedAnswersEqualTheTargetsExactlyWhenTeacherForcedArgmaxesDo()
    {
        using var model = EngineFactory.Open(Path.Combine(Demo, "model"), "cpu");
        var engine = model.Engine;
        var dev = PretokenizedJsonl.Load(Path.Combine(Demo, "data", "sort.dev.jsonl"), engine.VocabSize, 28).Take(40).ToList();
        foreach (var prompt in new[] { TaskTokenPrompt(model, taskToken: 20), TaskTokenPrompt(model, taskToken: 19) })
        {
            engine.LoadPrompts(prompt, 1, 4);
            var decoded = GreedyDecoder.Generate(engine, dev.Select(e => e.Input).ToList(), maxNewTokens: 12, stopToken: 22, batchSize: 16);
            int exact = dev.Where((e, i) => decoded[i].SequenceEqual(e.Target)).Count();
            double teacherForced = Evaluator.ExactMatch(engine, dev).Accuracy;
            Assert.That(exact / (double)dev.Count, Is.EqualTo(teacherForced).Within(1e-12));
        }
        engine.LoadPrompts(TaskTokenPrompt(model, taskToken: 20), 1, 4);
        var sorted = GreedyDecoder.Generate(engine, dev.Select(e => e.Input).ToList(), 12, 22);
        Assert.That(dev.Where((e, i) => sorted[i].SequenceEqual(e.Target)).Count(), Is.GreaterThanOrEqualTo(38), "the <sort> token sorts");
    }

    [Test]
    public void NextTokenLogitsAgreeBetweenCpuAndEmulatedGpu()
    {
        if (!SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        using var cpu = EngineFactory.Open(Path.Combine(Demo, "model"), "cpu");
        using var emulated = EngineFactory.Open(Path.Combine(Demo, "model"), "cuda-emulated");
        var prompt = TaskTokenPrompt(cpu, 18);
        var batch = new TokenBatch(3, 6, 4);
        batch.Reset(6);
        batch.AddDecodingRow([1, 2, 3, 16]);
        batch.AddDecodingRow([5]);
        batch.AddDecodingRow([]);
        var expected = new float[3 * cpu.Engine.VocabSize];
        var actual = new float[expected.Length];
        cpu.Engine.LoadPrompts(prompt, 1, 4);
        emulated.Engine.LoadPrompts(prompt, 1, 4);
        cpu.Engine.NextTokenLogits(batch, expected);
        emulated.Engine.NextTokenLogits(batch, actual);
        Assert.That(actual, Is.EqualTo(expected).Within(1e-4));
    }
}

public sealed class GenerationMetricsTests
{
    [TestCase(new[] { 1, 2, 3 }, new[] { 1, 2, 3 }, 1.0)]
    [TestCase(new[] { 3, 2, 1 }, new[] { 1, 2, 3 }, 1.0)]
    [TestCase(new[] { 1, 1 }, new[] { 1, 2 }, 0.5)]
    [TestCase(new[] { 4 }, new[] { 1, 2 }, 0.0)]
    [TestCase(new[] { 1, 2, 3, 4 }, new[] { 1, 2 }, 2 * 0.5 * 1.0 / 1.5)]
    public void TokenF1CountsTheMultisetOverlap(int[] predicted, int[] gold, double expected)
        => Assert.That(GenerationMetrics.TokenF1(predicted, gold), Is.EqualTo(expected).Within(1e-12));

    [Test]
    public void DecodedExactMatchEqualsTeacherForcedExactMatchOnTheDemo()
    {
        string demo = Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo");
        using var model = EngineFactory.Open(Path.Combine(demo, "model"), "cpu");
        var prompt = PromptFile.Load(Path.Combine(demo, "prompts", "reverse.safetensors"));
        model.Engine.LoadPrompts(prompt.Values, 1, prompt.Length);
        var dev = PretokenizedJsonl.Load(Path.Combine(demo, "data", "reverse.dev.jsonl"), model.Engine.VocabSize, 28).Take(30).ToList();
        var generated = GenerationMetrics.Score(model.Engine, dev, stopToken: 22);
        Assert.That(generated.ExactMatch, Is.EqualTo(Evaluator.ExactMatch(model.Engine, dev).Accuracy).Within(1e-12));
        Assert.That(generated.ExactMatch, Is.GreaterThan(0.9));
        Assert.That(generated.TokenF1, Is.GreaterThanOrEqualTo(generated.ExactMatch));
    }
}

using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>K micro-batches of B rows against one batch of K×B rows, on the CPU engine.</summary>
public sealed class GradientAccumulationTests
{
    private const int PromptLength = 3;
    private static readonly Models.Gpt2.Gpt2Weights<float> Weights = TestModels.Random<float>(TestModels.TinyConfig(), seed: 21);

    private static CpuGpt2Engine<float> Engine()
    {
        var engine = new CpuGpt2Engine<float>(Weights);
        engine.LoadPrompts(TestModels.RandomPrompts<float>(PromptLength * Weights.Config.Embedding, seed: 5).AsSpan(), 1, PromptLength);
        return engine;
    }

    private static List<TokenizedExample> Rows(Func<int, int> targetLength) =>
        [.. Enumerable.Range(0, 8).Select(i => new TokenizedExample([.. Enumerable.Range(0, 1 + i % 5).Select(t => (t * 7 + i) % 23)], [.. Enumerable.Range(0, targetLength(i)).Select(t => (t + 3 * i) % 23)]))];

    private static float[] Train(List<TokenizedExample> rows, OptimizerKind kind, int batchSize, int accumulation, out TrainResult result)
    {
        using var engine = Engine();
        var options = new TrainOptions(Steps: 1, batchSize, LearningRate: 0.5f, new OptimizerSettings(kind), Shuffle: false) { GradientAccumulation = accumulation };
        result = new TrainingRun(engine, rows, options).Run();
        var prompt = new float[PromptLength * Weights.Config.Embedding];
        engine.ReadPrompts(prompt);
        return prompt;
    }

    [TestCase(OptimizerKind.Sgd)]
    [TestCase(OptimizerKind.AdamW)]
    [TestCase(OptimizerKind.Adafactor)]
    public void EqualTargetCountsMakeTheSameUpdateAsOneBigBatch(OptimizerKind kind)
    {
        var rows = Rows(_ => 2);
        var big = Train(rows, kind, batchSize: 8, accumulation: 1, out var bigResult);
        var accumulated = Train(rows, kind, batchSize: 4, accumulation: 2, out var accumulatedResult);
        var quarters = Train(rows, kind, batchSize: 2, accumulation: 4, out _);
        // float32 sums in another order (BLAS picks kernels by batch size); Adafactor's RMS normalisation magnifies that
        // to a few 1e-6 of an update of size lr = 0.5, while a wrongly weighted micro-batch moves it by 1e-2.
        Assert.That(accumulated, Is.EqualTo(big).Within(2e-5f));
        Assert.That(quarters, Is.EqualTo(big).Within(2e-5f));
        Assert.That(accumulatedResult.LastLoss, Is.EqualTo(bigResult.LastLoss).Within(1e-5f));
    }

    [TestCase(OptimizerKind.Sgd)]
    [TestCase(OptimizerKind.AdamW)]
    [TestCase(OptimizerKind.Adafactor)]
    public void UnequalTargetCountsStillMakeTheSameUpdateAsOneBigBatch(OptimizerKind kind)
    {
        // Rows 0–3 have one target token, rows 4–7 three: each micro-batch is weighted by its target count, so the
        // update is the gradient of the mean over all 16 target tokens, as one batch of 8 rows gives.
        var rows = Rows(i => i < 4 ? 1 : 3);
        var big = Train(rows, kind, batchSize: 8, accumulation: 1, out var bigResult);
        var accumulated = Train(rows, kind, batchSize: 4, accumulation: 2, out var result);
        var quarters = Train(rows, kind, batchSize: 2, accumulation: 4, out _);
        Assert.That(accumulated, Is.EqualTo(big).Within(2e-6f));
        Assert.That(quarters, Is.EqualTo(big).Within(2e-6f));
        Assert.That(result.LastLoss, Is.EqualTo(bigResult.LastLoss).Within(1e-5f), "the reported loss is token-weighted: the loss of all 8 rows");
    }
}

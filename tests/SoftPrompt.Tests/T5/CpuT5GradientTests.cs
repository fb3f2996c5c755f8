using SoftPrompt.Engines;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tests.T5;

/// <summary>The CPU T5 engine's manual reverse pass against central finite differences in float64, and its batch semantics.</summary>
public sealed class CpuT5GradientTests
{
    /// <summary>Tiny T5s with awkward sizes: attention width H·d_kv ≠ d_model, encoder and decoder depths differ.</summary>
    internal static T5Config TinyConfig(bool gated) => new(
        VocabSize: 23, Embedding: 8, HeadSize: 3, FeedForwardSize: 10, Layers: 2, DecoderLayers: gated ? 3 : 1, Heads: 2,
        RelativeBuckets: 8, RelativeMaxDistance: 12, FeedForwardProjection: gated ? T5Config.GatedGelu : T5Config.Relu,
        TiedEmbeddings: !gated, LayerNormEpsilon: 1e-6);

    private static CpuT5Engine<double> Engine(bool gated, int prompts, int promptLength, int seed)
    {
        var config = TinyConfig(gated);
        var engine = new CpuT5Engine<double>(T5Weights<double>.CreateRandom(config, seed));
        engine.LoadPrompts(TestModels.RandomPrompts<double>(prompts * promptLength * config.Embedding, seed: seed + 1), prompts, promptLength);
        return engine;
    }

    [TestCase(false, 1, 3)]
    [TestCase(true, 2, 4)]
    public void PromptGradientMatchesFiniteDifferences(bool gated, int prompts, int promptLength)
    {
        using var engine = Engine(gated, prompts, promptLength, seed: 7);
        var batch = TestModels.MixedBatch(promptLength, prompts, engine.VocabSize);
        engine.LossAndGradient(batch);
        double[] analytic = engine.PromptGradient.ToArray();

        const double h = 1e-5;
        double worst = 0;
        for (int i = 0; i < analytic.Length; i++)
        {
            double saved = engine.Prompts[i];
            engine.Prompts[i] = saved + h;
            double up = engine.Loss(batch);
            engine.Prompts[i] = saved - h;
            double down = engine.Loss(batch);
            engine.Prompts[i] = saved;
            double numeric = (up - down) / (2 * h);
            worst = Math.Max(worst, Math.Abs(numeric - analytic[i]) / Math.Max(1e-6, Math.Abs(numeric) + Math.Abs(analytic[i])));
        }
        Assert.That(worst, Is.LessThan(1e-6), "max relative error between analytic and finite-difference prompt gradient");
        Assert.That(analytic.Select(Math.Abs).Max(), Is.GreaterThan(1e-4), "gradient must not be trivially zero");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void RowScoresSumToTheTotalLossAndAccumulationAdds(bool gated)
    {
        using var engine = Engine(gated, 2, 3, seed: 11);
        var batch = TestModels.MixedBatch(3, 2, engine.VocabSize);
        var scores = new float[batch.Rows];
        var matches = new int[batch.Rows];
        engine.ScoreRows(batch, scores, matches);
        double loss = engine.Loss(batch);
        Assert.That(-scores.Sum() / batch.TargetCount, Is.EqualTo(loss).Within(1e-5));
        Assert.That(matches.Select((m, row) => m <= batch.Lengths[row]), Is.All.True);

        engine.LossAndGradient(batch);
        double[] once = engine.PromptGradient.ToArray();
        engine.LossAndGradient(batch, accumulate: true);
        Assert.That(engine.PromptGradient.ToArray(), Is.EqualTo(once.Select(g => 2 * g).ToArray()).Within(1e-12));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void RowsDoNotSeeEachOther(bool gated)
    {
        using var engine = Engine(gated, 2, 2, seed: 2);
        var mixed = TestModels.MixedBatch(2, 2, engine.VocabSize);
        var scores = new float[mixed.Rows];
        engine.ScoreRows(mixed, scores);
        for (int row = 0; row < mixed.Rows; row++)
        {
            var single = new TokenBatch(1, 8, 2);
            single.Reset(mixed.Lengths[row]);
            var tokens = mixed.RowTokens(row);
            int firstTarget = Array.FindIndex(mixed.Targets, row * mixed.SequenceLength, mixed.SequenceLength, t => t != TokenBatch.Ignore) - row * mixed.SequenceLength;
            int inputLength = firstTarget - 2 + 1;
            single.AddRow(tokens[..inputLength], tokens[inputLength..], mixed.PromptIndex[row]);
            var alone = new float[1];
            engine.ScoreRows(single, alone);
            Assert.That(alone[0], Is.EqualTo(scores[row]).Within(1e-5), $"row {row}: padding of the other rows must not change its score");
        }
    }

    [Test]
    public void InputTokensReachTheLossOnlyThroughTheEncoder()
    {
        // Same targets, one input token changed: the decoder never reads inputs, so only cross-attention can move the loss.
        using var engine = Engine(gated: true, 1, 2, seed: 5);
        var a = new TokenBatch(1, 6, 2);
        a.Reset(5);
        a.AddRow([3, 4, 5], [6, 7]);
        var b = new TokenBatch(1, 6, 2);
        b.Reset(5);
        b.AddRow([3, 4, 9], [6, 7]);
        Assert.That(Math.Abs(engine.Loss(b) - engine.Loss(a)), Is.GreaterThan(1e-6));
    }

    [Test]
    public void TrainingStepsAllocateNothingAfterTheFirst()
    {
        var config = TinyConfig(gated: true);
        using var engine = new CpuT5Engine<float>(T5Weights<float>.CreateRandom(config, seed: 4));
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 3 * config.Embedding, seed: 1), 2, 3);
        var batch = TestModels.MixedBatch(3, 2, config.VocabSize);
        var settings = new OptimizerSettings(OptimizerKind.AdamW, ClipNorm: 0.5f);
        for (int step = 1; step <= 2; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }

        // The count covers every thread (the engine's workers too), so a background thread of an earlier test can add to
        // one window: an engine that allocates does so in every window, so the fewest of three windows is the engine's.
        long fewest = long.MaxValue;
        for (int window = 0, step = 3; window < 3; window++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < 3; i++, step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }
            fewest = Math.Min(fewest, GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        Assert.That(fewest, Is.Zero, "bytes allocated by three training steps");
    }

    [TestCase(OptimizerKind.Sgd)]
    [TestCase(OptimizerKind.AdamW)]
    [TestCase(OptimizerKind.Adafactor)]
    public void OptimizerStepsLowerTheLoss(OptimizerKind kind)
    {
        var config = TinyConfig(gated: true);
        using var engine = new CpuT5Engine<float>(T5Weights<float>.CreateRandom(config, seed: 3));
        engine.LoadPrompts(TestModels.RandomPrompts<float>(4 * config.Embedding, seed: 4), 1, 4);
        var batch = TestModels.MixedBatch(4, 1, config.VocabSize);
        float first = engine.ForwardBackward(batch), loss = first;
        var settings = new OptimizerSettings(kind);
        float lr = kind == OptimizerKind.Sgd ? 0.5f : 0.05f;
        for (int step = 1; step <= 10; step++)
        {
            engine.OptimizerStep(settings, step, lr);
            loss = engine.ForwardBackward(batch);
        }
        Assert.That(loss, Is.LessThan(first), $"{kind}: loss after 10 steps");
        Assert.That(engine.LastGradientNorm, Is.GreaterThan(0));
        var stateCopy = new float[engine.OptimizerStateLength];
        engine.ReadOptimizerState(stateCopy);
        engine.LoadOptimizerState(stateCopy);
    }

    [Test]
    public void BadBatchesAreNamed()
    {
        using var engine = Engine(gated: false, 1, 2, seed: 1);
        var wrongPrompt = new TokenBatch(1, 4, 3);
        wrongPrompt.Reset(3);
        wrongPrompt.AddRow([1], [2, 3]);
        Assert.That(Assert.Throws<ArgumentException>(() => engine.Forward(wrongPrompt))!.Message, Does.Contain("prompt 0 of length 3").And.Contain("has length 2"));
        var outside = new TokenBatch(1, 4, 2);
        outside.Reset(3);
        outside.AddRow([1], [2, 99]);
        Assert.That(Assert.Throws<ArgumentException>(() => engine.Forward(outside))!.Message, Does.Contain("token id 99"));
        var wrongIndex = new TokenBatch(1, 4, 2);
        wrongIndex.Reset(3);
        wrongIndex.AddRow([1], [2], promptIndex: 1);
        Assert.That(Assert.Throws<ArgumentException>(() => engine.Forward(wrongIndex))!.Message, Does.Contain("uses prompt 1"));
    }
}

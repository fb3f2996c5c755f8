using SoftPrompt.Engines;

namespace SoftPrompt.Tests.Engines;

/// <summary>The CPU engine's manual reverse pass against central finite differences in float64.</summary>
public sealed class CpuEngineGradientTests
{
    [TestCase(1, 3)]
    [TestCase(2, 4)]
    public void PromptGradientMatchesFiniteDifferences(int prompts, int promptLength)
    {
        var config = TestModels.TinyConfig();
        using var engine = new CpuGpt2Engine<double>(TestModels.Random<double>(config, seed: 7));
        int size = prompts * promptLength * config.Embedding;
        engine.LoadPrompts(TestModels.RandomPrompts<double>(size, seed: 3), prompts, promptLength);
        var batch = TestModels.MixedBatch(promptLength, prompts, config.VocabSize);

        engine.LossAndGradient(batch);
        double[] analytic = engine.PromptGradient.ToArray();

        const double h = 1e-5;
        double worst = 0;
        for (int i = 0; i < size; i++)
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

    [Test]
    public void RowScoresSumToTheTotalLoss()
    {
        var config = TestModels.TinyConfig();
        using var engine = new CpuGpt2Engine<double>(TestModels.Random<double>(config, seed: 11));
        engine.LoadPrompts(TestModels.RandomPrompts<double>(2 * 3 * config.Embedding, seed: 5), 2, 3);
        var batch = TestModels.MixedBatch(3, 2, config.VocabSize);
        var scores = new float[batch.Rows];
        engine.ScoreRows(batch, scores);
        double loss = engine.Loss(batch);
        Assert.That(-scores.Sum() / batch.TargetCount, Is.EqualTo(loss).Within(1e-5));
    }

    [Test]
    public void RowsDoNotSeeEachOther()
    {
        var config = TestModels.TinyConfig();
        using var engine = new CpuGpt2Engine<double>(TestModels.Random<double>(config, seed: 2));
        engine.LoadPrompts(TestModels.RandomPrompts<double>(2 * 2 * config.Embedding, seed: 9), 2, 2);
        var mixed = TestModels.MixedBatch(2, 2, config.VocabSize);
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
            Assert.That(alone[0], Is.EqualTo(scores[row]).Within(1e-5), $"row {row}");
        }
    }
}

using SoftPrompt.Cpu;
using SoftPrompt.Engines;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Tests.Llama;

/// <summary>The CPU Llama engine's manual reverse pass (RMSNorm, RoPE, GQA, SwiGLU) against central finite differences in float64.</summary>
public sealed class CpuLlamaGradientTests
{
    [TestCase(false, 2, 1, 3)]
    [TestCase(true, 1, 2, 4)]   // tied head, multi-query attention, two prompts
    [TestCase(false, 6, 2, 2)]  // plain multi-head attention
    public void PromptGradientMatchesFiniteDifferences(bool tied, int keyValueHeads, int prompts, int promptLength)
    {
        var config = LlamaTestModels.TinyConfig(tied, keyValueHeads);
        using var engine = new CpuLlamaEngine<double>(LlamaTestModels.Random<double>(config, seed: 7));
        int size = prompts * promptLength * config.Embedding;
        engine.LoadPrompts(TestModels.RandomPrompts<double>(size, seed: 3), prompts, promptLength);
        var batch = TestModels.MixedBatch(promptLength, prompts, config.VocabSize);

        engine.LossAndGradient(batch, accumulate: false, 1.0);
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
    public void RowsSeeOnlyTheirOwnPromptAndTokens()
    {
        var config = LlamaTestModels.TinyConfig();
        using var engine = new CpuLlamaEngine<double>(LlamaTestModels.Random<double>(config, seed: 2));
        engine.LoadPrompts(TestModels.RandomPrompts<double>(2 * 2 * config.Embedding, seed: 9), 2, 2);
        var mixed = TestModels.MixedBatch(2, 2, config.VocabSize);
        var scores = new float[mixed.Rows];
        engine.ScoreRows(mixed, scores);
        for (int row = 0; row < mixed.Rows; row++)
        {
            var (input, target) = (mixed.RowTokens(row)[..^TargetLength(mixed, row)].ToArray(), mixed.RowTokens(row)[^TargetLength(mixed, row)..].ToArray());
            var alone = new TokenBatch(1, 8, 2);
            alone.Reset(input.Length + target.Length);
            alone.AddRow(input, target, mixed.PromptIndex[row]);
            var score = new float[1];
            engine.ScoreRows(alone, score);
            Assert.That(scores[row], Is.EqualTo(score[0]).Within(1e-5 * Math.Max(1, Math.Abs(score[0]))), $"row {row}");
        }
    }

    private static int TargetLength(TokenBatch batch, int row)
    {
        int count = 0;
        foreach (int t in batch.Targets.AsSpan(row * batch.SequenceLength, batch.SequenceLength)) if (t != TokenBatch.Ignore) count++;
        return count;
    }

    [Test]
    public void RopeBackwardIsTheInverseRotationAndKeepsNorms()
    {
        var config = LlamaTestModels.TinyConfig();
        var (cos, sin) = LlamaRope.Tables<double>(config.InverseFrequencies<double>(), 10);
        var x = TestModels.RandomPrompts<double>(2 * 10 * 3 * 6, seed: 1);
        var y = (double[])x.Clone();
        RopeOps.Forward<double>(y, cos, sin, 2, 10, 3, 6);
        for (int v = 0; v < 2 * 10 * 3; v++)
            Assert.That(Norm(y.AsSpan(v * 6, 6)), Is.EqualTo(Norm(x.AsSpan(v * 6, 6))).Within(1e-12), "a rotation keeps each head vector's length");
        Assert.That(y.AsSpan(0, 3 * 6).ToArray(), Is.EqualTo(x.AsSpan(0, 3 * 6).ToArray()).Within(1e-15), "position 0 is not rotated");
        Assert.That(y.Zip(x, (a, b) => Math.Abs(a - b)).Max(), Is.GreaterThan(0.1), "later positions are");
        RopeOps.Backward<double>(y, cos, sin, 2, 10, 3, 6);
        Assert.That(y, Is.EqualTo(x).Within(1e-12), "Rᵀ R = I");
    }

    private static double Norm(ReadOnlySpan<double> v)
    {
        double sum = 0;
        foreach (double x in v) sum += x * x;
        return Math.Sqrt(sum);
    }

    [Test]
    public void SwiGluBackwardMatchesFiniteDifferences()
    {
        double[] gate = [-3, -0.5, 0, 0.7, 2.5], up = [1.5, -2, 0.3, 4, -1], dy = [0.2, -1, 3, 0.5, 1.1];
        var dGate = new double[5];
        var dUp = new double[5];
        SwiGluOps.Backward<double>(dGate, dUp, dy, gate, up);
        const double h = 1e-6;
        for (int i = 0; i < 5; i++)
        {
            double F(double g, double u) { var y = new double[1]; SwiGluOps.Forward<double>(y, [g], [u]); return y[0] * dy[i]; }
            Assert.That(dGate[i], Is.EqualTo((F(gate[i] + h, up[i]) - F(gate[i] - h, up[i])) / (2 * h)).Within(1e-8), $"dGate {i}");
            Assert.That(dUp[i], Is.EqualTo((F(gate[i], up[i] + h) - F(gate[i], up[i] - h)) / (2 * h)).Within(1e-8), $"dUp {i}");
        }
    }
}

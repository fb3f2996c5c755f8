using SoftPrompt.Cpu;

namespace SoftPrompt.Tests.Cpu;

public sealed class AdafactorTests
{
    [Test]
    public void FirstStepOfAConstantGradientMovesEveryEntryByTheLearningRate()
    {
        // At t = 1, β2 = 0: R = C = g², so u = g/|g| = ±1, RMS(u) = 1 and no clipping applies.
        double[] p = [1, 2, 3, 4, 5, 6], g = [-0.5, -0.5, -0.5, -0.5, -0.5, -0.5];
        var rows = new double[2];
        var cols = new double[3];
        AdafactorOps.Step<double>(p, g, rows, cols, 2, 3, learningRate: 0.3, decayRate: -0.8, clipThreshold: 1, epsilon: 1e-30, weightDecay: 0, step: 1, gradientScale: 1);
        Assert.That(p, Is.EqualTo(new[] { 1.3, 2.3, 3.3, 4.3, 5.3, 6.3 }).Within(1e-12));
    }

    [Test]
    public void UpdatesAreClippedToTheThresholdRms()
    {
        // One huge entry: the factored estimate underestimates it, so the raw update's RMS exceeds 1 and is scaled back to 1.
        double[] p = new double[4], g = [100, 0.01, 0.01, 0.01];
        var rows = new double[2];
        var cols = new double[2];
        AdafactorOps.Step<double>(p, g, rows, cols, 2, 2, 1.0, -0.8, 1.0, 1e-30, 0, 1, 1);
        double rms = Math.Sqrt(p.Sum(v => v * v) / p.Length);
        Assert.That(rms, Is.EqualTo(1.0).Within(1e-9));
        Assert.That(p[0], Is.LessThan(0));
    }

    [Test]
    public void SecondMomentsDecayAsOneMinusTToTheMinusPointEight()
    {
        double[] p = new double[1], g = [2];
        double[] rows = [0], cols = [0];
        AdafactorOps.Step<double>(p, g, rows, cols, 1, 1, 0.0, -0.8, 1.0, 0, 0, 1, 1);
        Assert.That(rows[0], Is.EqualTo(4).Within(1e-12));
        g[0] = 1;
        AdafactorOps.Step<double>(p, g, rows, cols, 1, 1, 0.0, -0.8, 1.0, 0, 0, 2, 1);
        double beta2 = 1 - Math.Pow(2, -0.8);
        Assert.That(rows[0], Is.EqualTo(beta2 * 4 + (1 - beta2) * 1).Within(1e-12));
        Assert.That(cols[0], Is.EqualTo(rows[0]).Within(1e-12));
    }
}

using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class ClassificationMetricsTests
{
    [Test]
    public void MacroF1IsTheMeanOfPerClassF1()
    {
        int[] gold = [0, 0, 0, 1, 1, 2];
        int[] predicted = [0, 0, 1, 1, 2, 2];
        var m = ClassificationMetrics.From(gold, predicted, ["a", "b", "c", "never"]);
        // a: P 2/2, R 2/3, F1 0.8 · b: P 1/2, R 1/2, F1 0.5 · c: P 1/2, R 1/1, F1 2/3 · "never" is neither gold nor predicted: not averaged.
        Assert.That(m.Accuracy, Is.EqualTo(4.0 / 6).Within(1e-12));
        Assert.That(m.PerClass[0].F1, Is.EqualTo(0.8).Within(1e-12));
        Assert.That(m.PerClass[1].F1, Is.EqualTo(0.5).Within(1e-12));
        Assert.That(m.PerClass[2].F1, Is.EqualTo(2.0 / 3).Within(1e-12));
        Assert.That(m.MacroF1, Is.EqualTo((0.8 + 0.5 + 2.0 / 3) / 3).Within(1e-12));
        Assert.That(m.PerClass[2].Support, Is.EqualTo(1));
        Assert.That(m.PerClass[2].Predicted, Is.EqualTo(2));
        Assert.That(m.Confusion[0], Is.EqualTo(new[] { 2, 1, 0, 0 }));
        Assert.That(m.Confusion[1], Is.EqualTo(new[] { 0, 1, 1, 0 }));
    }

    [Test]
    public void AClassPredictedButNeverGoldCountsAsZero()
    {
        var m = ClassificationMetrics.From([0, 0], [0, 1], ["a", "b"]);
        // a: P 1, R 1/2, F1 2/3 · b: P 0, R 0 (no support), F1 0 → macro 1/3 (as scikit-learn's default).
        Assert.That(m.MacroF1, Is.EqualTo(1.0 / 3).Within(1e-12));
    }
}

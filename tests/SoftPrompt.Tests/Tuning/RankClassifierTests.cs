using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class RankClassifierTests
{
    [Test]
    public void PicksTheLabelWithTheHighestSummedLogLikelihood()
    {
        // Labels [1], [3], [5 5]; the scripted engine scores a label token t after first input token x as −(|t − x| + 0.5).
        var task = new ClassificationTask(["one", "three", "five"], [[1], [3], [5, 5]], [0, 1, 2, 1, 1]);
        TokenizedExample Row(params int[] input) => new(input, [0]);
        var examples = new[] { Row(1, 7), Row(3), Row(5, 0), Row(2), Row(4) };
        var engine = new ScriptedEngine();

        var result = RankClassifier.Evaluate(engine, examples, task, batchSize: 4);

        // x=2 ties "one" and "three" at −1.5: the first listed label wins. x=4: "three" −1.5 beats "five" −(1+1+1) = −3.
        Assert.That(result.Predictions, Is.EqualTo(new[] { 0, 1, 2, 0, 1 }));
        Assert.That(result.Score(2, 2), Is.EqualTo(-1f), "a two-token label's score is the sum over its tokens");
        Assert.That(result.Score(0, 2), Is.EqualTo(-9f));
        Assert.That(engine.ScoredBatches, Is.EqualTo(4), "15 (example, label) rows in batches of 4");
        Assert.That(result.Metrics.Accuracy, Is.EqualTo(0.8));
        // Gold rows: scores −0.5, −0.5, −1, −1.5, −1.5 over 1+1+2+1+1 target tokens.
        Assert.That(result.MeanLoss, Is.EqualTo(5.0 / 6).Within(1e-9));
        Assert.That(result.ExactMatch, Is.EqualTo(0.6), "rows whose gold label tokens are all greedy matches");
        Assert.That(result.TokenAccuracy, Is.EqualTo(4.0 / 6).Within(1e-12));
        // one: P 1/2 R 1 F1 2/3 · three: P 1 R 2/3 F1 0.8 · five: 1.
        Assert.That(result.Metrics.MacroF1, Is.EqualTo((2.0 / 3 + 0.8 + 1) / 3).Within(1e-12));
    }

    [Test]
    public void TheDemoModelsTaskTokenClassifiesMajority()
    {
        // Majority as 16-way classification, with the prompt the model was pretrained with: <fill> <fill> <fill> <majority>.
        using var model = DemoModel.Open();
        int width = model.Config.Embedding;
        var prompt = new float[4 * width];
        int[] taskTokens = [17, 17, 17, 21];
        for (int p = 0; p < 4; p++) model.TokenEmbedding.AsSpan(taskTokens[p] * width, width).CopyTo(prompt.AsSpan(p * width));
        model.Engine.LoadPrompts(prompt, 1, 4);
        var rows = DemoModel.Rows("majority.dev.jsonl", 40);
        var task = new ClassificationTask([.. Enumerable.Range(0, 16).Select(s => s.ToString())], [.. Enumerable.Range(0, 16).Select(s => new[] { s, 22 })],
            [.. rows.Select(r => r.Target[0])]);

        var result = RankClassifier.Evaluate(model.Engine, rows, task, batchSize: 64);

        Assert.That(result.Metrics.Accuracy, Is.GreaterThanOrEqualTo(0.95));
        Assert.That(result.ExactMatch, Is.EqualTo(Evaluator.ExactMatch(model.Engine, rows).Accuracy), "the gold rows are the examples themselves");
    }

    [Test]
    public void DevMetricsBreakTiesOnLoss()
    {
        DevMetrics M(double accuracy, double loss) => new("accuracy", new Dictionary<string, double> { ["accuracy"] = accuracy, ["loss"] = loss });
        Assert.That(M(0.9, 1).IsBetterThan(M(0.8, 0.1)), Is.True);
        Assert.That(M(1, 0.1).IsBetterThan(M(1, 0.2)), Is.True);
        Assert.That(M(1, 0.2).IsBetterThan(M(1, 0.2)), Is.False);
    }
}

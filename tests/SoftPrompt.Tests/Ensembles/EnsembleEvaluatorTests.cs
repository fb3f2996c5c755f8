using SoftPrompt.Engines;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Ensembles;

/// <summary>The demo's four reference prompts as an ensemble on one task: each prompt's score equals evaluating it alone.</summary>
public sealed class EnsembleEvaluatorTests
{
    private static readonly string[] Tasks = ["copy", "reverse", "sort", "majority"];

    private static PromptSet Load(LoadedModel model, params string[] tasks) =>
        PromptSet.Load([.. tasks.Select(DemoModel.Prompt)], model.Engine.EmbeddingSize, model.Fingerprint);

    private static void LoadOne(IPromptEngine engine, PromptSet set, int k)
    {
        int size = set.LongestLength * set.Width;
        engine.LoadPrompts(set.Values.AsSpan(k * size, size), 1, set.LongestLength);
    }

    [Category("Slow")]
    [Test]
    public void GenerationScoresEachPromptAsExactMatchAloneDoes()
    {
        using var model = DemoModel.Open();
        var engine = model.Engine;
        var set = Load(model, Tasks);
        var dev = DemoModel.Rows("copy.dev.jsonl", 48);
        engine.LoadPrompts(set.Values, set.Layout);
        var result = EnsembleEvaluator.Generate(engine, dev, stopToken: 22, batchSize: 10);

        Assert.That(result.IsClassification, Is.False);
        Assert.That(result.Examples, Is.EqualTo(48));
        for (int k = 0; k < set.Count; k++)
        {
            LoadOne(engine, set, k);
            var alone = Evaluator.ExactMatch(engine, dev);
            Assert.That(result.Prompts[k].Accuracy, Is.EqualTo(alone.Accuracy).Within(1e-12), $"{Tasks[k]} prompt's exact match");
            Assert.That(result.Prompts[k].Loss, Is.EqualTo(alone.MeanLoss).Within(1e-4 * Math.Max(1, alone.MeanLoss)), $"{Tasks[k]} prompt's loss");
        }
        Assert.That(result.BestPrompt, Is.EqualTo(0), "on copy rows the copy prompt is the best single prompt");
        Assert.That(result.Prompts[0].Accuracy, Is.EqualTo(1.0));
        Assert.That(result.Candidates!.All(c => c.Count is >= 1 and <= 4), Is.True);
    }

    /// <summary>
    /// The evaluator decodes only the answers teacher forcing leaves open: its candidates must be exactly those of
    /// decoding every (example, prompt) pair. Sort rows: the sort prompt gets most of them right, copy and reverse some
    /// (inputs that are already sorted, or palindromes sorted), so both paths are taken.
    /// </summary>
    [Category("Slow")]
    [Test]
    public void CandidatesEqualDecodingEveryPromptOnEveryExample()
    {
        using var model = DemoModel.Open();
        var engine = model.Engine;
        var set = Load(model, "sort", "copy", "reverse");
        var dev = DemoModel.Rows("sort.dev.jsonl", 40);
        engine.LoadPrompts(set.Values, set.Layout);
        var result = EnsembleEvaluator.Generate(engine, dev, stopToken: 22, batchSize: 9);

        int k = set.Count;
        var inputs = dev.SelectMany(e => Enumerable.Repeat(e.Input, k)).ToList();
        var promptOf = Enumerable.Range(0, dev.Count * k).Select(r => r % k).ToArray();
        var all = GreedyDecoder.Generate(engine, inputs, promptOf, dev.Max(e => e.Target.Length), 22, batchSize: 9);
        int settled = 0;
        for (int i = 0; i < dev.Count; i++)
        {
            var expected = new List<int[]>();
            for (int p = 0; p < k; p++)
            {
                var answer = all[i * k + p];
                if (!expected.Any(a => a.SequenceEqual(answer))) expected.Add(answer);
                if (answer.SequenceEqual(dev[i].Target)) settled++;
            }
            Assert.That(result.Candidates![i], Is.EqualTo(expected), $"example {i}: distinct answers in prompt order");
        }
        Assert.That(settled, Is.InRange(1, dev.Count * k - 1), "some answers were settled by teacher forcing, some decoded");
    }

    [Test]
    public void TwoAgreeingPromptsOutvoteAThirdAndAStopTokenIsInferredFromTheTargets()
    {
        using var model = DemoModel.Open();
        var engine = model.Engine;
        var set = Load(model, "copy", "reverse", "copy");
        var dev = DemoModel.Rows("copy.dev.jsonl", 30);
        engine.LoadPrompts(set.Values, set.Layout);
        Assert.That(EnsembleEvaluator.InferStopToken(dev), Is.EqualTo(22), "every copy target ends with <eos> and holds it nowhere else");
        var result = EnsembleEvaluator.Generate(engine, dev);
        Assert.That(result.Majority.Accuracy, Is.EqualTo(result.Prompts[0].Accuracy));
        Assert.That(result.MeanProbability.Accuracy, Is.EqualTo(result.Prompts[0].Accuracy));
        Assert.That(result.Prompts[1].Accuracy, Is.LessThan(0.2));
    }

    [Category("Slow")]
    [Test]
    public void RankClassificationScoresEachPromptAsRankClassifierAloneDoes()
    {
        using var model = DemoModel.Open();
        var engine = model.Engine;
        var set = Load(model, "majority", "copy", "sort");
        var dev = DemoModel.Rows("majority.dev.jsonl", 40);
        // Every symbol is a label "s <eos>"; the gold label is the row's answer.
        var labels = Enumerable.Range(0, 16).Select(s => new[] { s, 22 }).ToArray();
        var task = new ClassificationTask([.. Enumerable.Range(0, 16).Select(s => s.ToString("x"))], labels, [.. dev.Select(e => e.Target[0])]);
        engine.LoadPrompts(set.Values, set.Layout);
        var result = EnsembleEvaluator.Classify(engine, dev, task, batchSize: 40);

        Assert.That(result.IsClassification, Is.True);
        for (int k = 0; k < set.Count; k++)
        {
            LoadOne(engine, set, k);
            var alone = RankClassifier.Evaluate(engine, dev, task);
            Assert.That(result.Prompts[k].Accuracy, Is.EqualTo(alone.Metrics.Accuracy).Within(1e-12), $"prompt {k} accuracy");
            Assert.That(result.Prompts[k].MacroF1, Is.EqualTo(alone.Metrics.MacroF1).Within(1e-12), $"prompt {k} macro-F1");
            Assert.That(result.Prompts[k].Loss, Is.EqualTo(alone.MeanLoss).Within(1e-4 * Math.Max(1, alone.MeanLoss)), $"prompt {k} loss");
        }
        Assert.That(result.BestPrompt, Is.EqualTo(0));
        Assert.That(result.Prompts[0].Accuracy, Is.GreaterThanOrEqualTo(0.95));
        Assert.That(result.MeanProbability.Accuracy, Is.InRange(0.0, 1.0));
    }

    [Test]
    public void DevMetricsOfAnEnsembleNameTheMajorityVoteAsPrimary()
    {
        using var model = DemoModel.Open();
        var engine = model.Engine;
        var set = Load(model, "reverse", "reverse");
        var dev = DemoModel.Rows("reverse.dev.jsonl", 12);
        engine.LoadPrompts(set.Values, set.Layout);
        var metrics = new DevEvaluator(dev, null, 8).Evaluate(engine);
        Assert.That(metrics.Primary, Is.EqualTo("exact_match"));
        Assert.That(metrics.Values.Keys, Is.SupersetOf(new[] { "exact_match", "mean_probability_exact_match", "best_prompt_exact_match", "mean_prompt_exact_match", "loss", "prompt0_exact_match", "prompt1_exact_match" }));
        LoadOne(engine, set, 0);
        var alone = new DevEvaluator(dev, null, 8).Evaluate(engine);
        Assert.That(metrics.Score, Is.EqualTo(alone.Score), "two identical prompts vote as one");
        Assert.That(metrics.MeanLoss, Is.EqualTo(alone.MeanLoss).Within(1e-5));
    }
}

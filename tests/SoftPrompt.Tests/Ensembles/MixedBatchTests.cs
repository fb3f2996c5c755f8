using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Engines;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Ensembles;

/// <summary>
/// A batch whose rows use different prompts gives every row exactly what a batch of the same rows under that row's
/// prompt alone gives it: scores, greedy matches, next-token logits and decoded answers.
/// </summary>
public sealed class MixedBatchTests
{
    private static readonly string[] Tasks = ["copy", "reverse", "sort"];

    private static LoadedModel Open(string device)
    {
        if (device == "cuda-emulated" && !EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        return EngineFactory.Open(DemoModel.Directory, device);
    }

    private static PromptSet Prompts(LoadedModel model) =>
        PromptSet.Load([.. Tasks.Select(DemoModel.Prompt)], model.Engine.EmbeddingSize, model.Fingerprint);

    /// <summary>Rows from the three tasks' dev data, the prompt of row i being i mod 3 reordered so neighbours differ.</summary>
    private static (List<TokenizedExample> Rows, int[] Prompts) Mixed(int perTask)
    {
        var rows = new List<TokenizedExample>();
        var prompts = new List<int>();
        var data = Tasks.Select(t => DemoModel.Rows($"{t}.dev.jsonl", perTask)).ToArray();
        for (int i = 0; i < perTask; i++)
            for (int t = 0; t < Tasks.Length; t++)
            {
                int task = (t + i) % Tasks.Length;
                rows.Add(data[task][i]);
                prompts.Add(task);
            }
        return (rows, [.. prompts]);
    }

    private static TokenBatch Batch(List<TokenizedExample> rows, Func<int, int> prompt, int promptLength)
    {
        var batch = new TokenBatch(rows.Count, rows.Max(r => r.Length), promptLength);
        batch.Reset(rows.Max(r => r.Length));
        for (int i = 0; i < rows.Count; i++) batch.AddRow(rows[i].Input, rows[i].Target, prompt(i));
        return batch;
    }

    [Category("Slow")]
    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void ScoresAndNextTokenLogitsOfEachRowEqualItsSinglePromptBatch(string device)
    {
        using var model = Open(device);
        var engine = model.Engine;
        var set = Prompts(model);
        var (rows, promptOf) = Mixed(4);
        int vocab = engine.VocabSize;

        engine.LoadPrompts(set.Values, set.Layout);
        var mixed = Batch(rows, i => promptOf[i], set.LongestLength);
        var scores = new float[rows.Count];
        var matches = new int[rows.Count];
        var logits = new float[rows.Count * vocab];
        engine.ScoreRows(mixed, scores, matches);
        engine.NextTokenLogits(mixed, logits);

        int size = set.LongestLength * set.Width;
        for (int p = 0; p < set.Count; p++)
        {
            engine.LoadPrompts(set.Values.AsSpan(p * size, size), 1, set.LongestLength);
            var single = Batch(rows, _ => 0, set.LongestLength);
            var singleScores = new float[rows.Count];
            var singleMatches = new int[rows.Count];
            var singleLogits = new float[rows.Count * vocab];
            engine.ScoreRows(single, singleScores, singleMatches);
            engine.NextTokenLogits(single, singleLogits);
            for (int i = 0; i < rows.Count; i++)
            {
                if (promptOf[i] != p) continue;
                Assert.That(scores[i], Is.EqualTo(singleScores[i]).Within(1e-5f * Math.Max(1f, Math.Abs(singleScores[i]))), $"row {i} ({Tasks[p]}) log-likelihood");
                Assert.That(matches[i], Is.EqualTo(singleMatches[i]), $"row {i} greedy matches");
                // Equal up to float32 summation order: BLAS picks its kernel by matrix size, and the batches differ in rows.
                var expected = singleLogits.AsSpan(i * vocab, vocab).ToArray();
                Assert.That(logits.AsSpan(i * vocab, vocab).ToArray(), Is.EqualTo(expected).Within(1e-5f * expected.Max(Math.Abs)), $"row {i} next-token logits");
            }
        }
        Assert.That(matches.Select((m, i) => m == rows[i].Target.Length).Count(x => x), Is.GreaterThanOrEqualTo(rows.Count - 1),
            "each task's reference prompt solves its rows in the mixed batch");
    }

    [Category("Slow")]
    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void DecodingWithAPromptPerRowEqualsDecodingEachTaskAlone(string device)
    {
        using var model = Open(device);
        var engine = model.Engine;
        var set = Prompts(model);
        var (rows, promptOf) = Mixed(3);
        var inputs = rows.Select(r => r.Input).ToList();

        engine.LoadPrompts(set.Values, set.Layout);
        var mixed = GreedyDecoder.Generate(engine, inputs, promptOf, maxNewTokens: 10, stopToken: 22, batchSize: 5);
        var scored = new float[rows.Count];
        RowScorer.Score(engine, [.. rows.Select((r, i) => new ScoreRow(r.Input, r.Target, promptOf[i]))], scored, batchSize: 4);

        int size = set.LongestLength * set.Width;
        for (int p = 0; p < set.Count; p++)
        {
            engine.LoadPrompts(set.Values.AsSpan(p * size, size), 1, set.LongestLength);
            var mine = Enumerable.Range(0, rows.Count).Where(i => promptOf[i] == p).ToList();
            var alone = GreedyDecoder.Generate(engine, [.. mine.Select(i => inputs[i])], 10, 22, batchSize: 5);
            var aloneScores = Evaluator.ExactMatch(engine, [.. mine.Select(i => rows[i])]);
            for (int j = 0; j < mine.Count; j++)
            {
                Assert.That(mixed[mine[j]], Is.EqualTo(alone[j]), $"row {mine[j]} ({Tasks[p]})");
                Assert.That(mixed[mine[j]], Is.EqualTo(rows[mine[j]].Target), $"row {mine[j]}: the {Tasks[p]} prompt does its task");
            }
            double loss = -mine.Sum(i => (double)scored[i]) / mine.Sum(i => rows[i].Target.Length);
            Assert.That(loss, Is.EqualTo(aloneScores.MeanLoss).Within(1e-5), $"{Tasks[p]} rows' loss scored in mixed batches");
        }
    }

    [Test]
    public void PromptFilesOfDifferentLengthsLoadPackedInOrder()
    {
        using var model = DemoModel.Open();
        int width = model.Engine.EmbeddingSize;
        string longer = Path.Combine(Path.GetTempPath(), $"softprompt-p5-{Guid.NewGuid():N}.safetensors");
        var values = TestModels.RandomPrompts<float>(5 * width, seed: 9);
        new PromptFile(values, 5, width, new Dictionary<string, string>()).Save(longer);
        try
        {
            var set = PromptSet.Load([DemoModel.Prompt("copy"), longer], width, model.Fingerprint);
            Assert.That(set.Layout.Lengths.ToArray(), Is.EqualTo(new[] { 4, 5 }));
            Assert.That(set.LengthText, Is.EqualTo("P=4/5"));
            Assert.That(set.Values.AsSpan(0, 4 * width).ToArray(), Is.EqualTo(PromptFile.Load(DemoModel.Prompt("copy")).Values));
            Assert.That(set.Values.AsSpan(4 * width).ToArray(), Is.EqualTo(values));
        }
        finally { File.Delete(longer); }
    }
}

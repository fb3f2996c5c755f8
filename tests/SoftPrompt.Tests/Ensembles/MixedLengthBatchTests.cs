using SoftPrompt.Cli.Commands;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Engines;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Ensembles;

/// <summary>
/// Prompts of different lengths in one batch, on every model family and device: each row gets what a batch of
/// its prompt alone gives it (scores, greedy matches, logits, decoded answers, the prompt's gradient), although its
/// tokens start at a different position from its neighbours'. The prompts: the trained copy prompt (P = 4), random
/// ones of P = 7 and P = 1, and an empty one (P = 0).
/// </summary>
[TestFixture("gpt2", "cpu")]
[TestFixture("gpt2", "cuda-emulated")]
[TestFixture("t5", "cpu")]
[TestFixture("t5", "cuda-emulated")]
[TestFixture("llama", "cpu")]
[TestFixture("llama", "cuda-emulated")]
public sealed class MixedLengthBatchTests(string family, string device)
{
    private static readonly int[] Lengths = [4, 7, 0, 1];
    private LoadedModel model = null!;
    private IPromptEngine engine = null!;
    private PromptLayout layout = null!;
    private float[] prompts = [];
    private List<TokenizedExample> rows = [];
    private int[] promptOf = [];

    [SetUp]
    public void Open()
    {
        if (device == "cuda-emulated" && !EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        model = EngineFactory.Open(Path.Combine(DemoCommand.DirectoryOf(family), "model"), device);
        engine = model.Engine;
        int width = engine.EmbeddingSize;
        layout = new PromptLayout(Lengths);
        var copy = PromptFile.Load(Path.Combine(DemoCommand.DirectoryOf(family), "prompts", "copy.safetensors")).Values;
        prompts = [.. copy, .. TestModels.RandomPrompts<float>((Lengths[1] + Lengths[3]) * width, seed: 5)];
        Assert.That(prompts, Has.Length.EqualTo(layout.ValueCount(width)));
        rows = DemoModel.Rows("copy.dev.jsonl", 9);
        promptOf = [.. Enumerable.Range(0, rows.Count).Select(i => (i * 3 + i / 4) % Lengths.Length)];
        Assert.That(Enumerable.Range(0, Lengths.Length).All(k => promptOf.Contains(k)), "every prompt serves a row");
    }

    [TearDown]
    public void Close() => model?.Dispose();

    private static TokenBatch Batch(IReadOnlyList<TokenizedExample> examples, Func<int, int> prompt, PromptLayout prompts)
    {
        int longest = examples.Max(r => r.Length);
        var batch = new TokenBatch(examples.Count, longest, prompts);
        batch.Reset(longest);
        for (int i = 0; i < examples.Count; i++) batch.AddRow(examples[i].Input, examples[i].Target, prompt(i));
        return batch;
    }

    private float[] Prompt(int k) => prompts.AsSpan(layout.Offset(k) * engine.EmbeddingSize, layout.Length(k) * engine.EmbeddingSize).ToArray();

    /// <summary>Within 1e-4 of the largest expected magnitude; a row added to the wrong prompt would be off by order one.</summary>
    private static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string what)
    {
        float scale = 1e-6f;
        foreach (float e in expected) scale = Math.Max(scale, Math.Abs(e));
        for (int i = 0; i < expected.Length; i++)
            Assert.That(actual[i], Is.EqualTo(expected[i]).Within(1e-4f * scale), $"{what} [{i}]");
    }

    [Category("Slow")]
    [Test]
    public void EachRowScoresAsUnderItsPromptAlone()
    {
        engine.LoadPrompts(prompts, layout);
        var mixed = Batch(rows, i => promptOf[i], layout);
        Assert.That(mixed.LongestPrompt, Is.EqualTo(7));
        var scores = new float[rows.Count];
        var matches = new int[rows.Count];
        engine.ScoreRows(mixed, scores, matches);

        for (int k = 0; k < Lengths.Length; k++)
        {
            engine.LoadPrompts(Prompt(k), 1, Lengths[k]);
            var mine = Enumerable.Range(0, rows.Count).Where(i => promptOf[i] == k).ToArray();
            var alone = Batch([.. mine.Select(i => rows[i])], _ => 0, engine.RequirePrompts());
            var aloneScores = new float[mine.Length];
            var aloneMatches = new int[mine.Length];
            engine.ScoreRows(alone, aloneScores, aloneMatches);
            for (int j = 0; j < mine.Length; j++)
            {
                Assert.That(scores[mine[j]], Is.EqualTo(aloneScores[j]).Within(1e-4f * Math.Max(1f, Math.Abs(aloneScores[j]))), $"row {mine[j]} (prompt {k}, P={Lengths[k]}) log-likelihood");
                Assert.That(matches[mine[j]], Is.EqualTo(aloneMatches[j]), $"row {mine[j]} greedy matches");
            }
        }
        Assert.That(Enumerable.Range(0, rows.Count).Where(i => promptOf[i] == 0).All(i => matches[i] == rows[i].Target.Length),
            "the trained copy prompt still copies when its rows share the batch with longer and shorter prompts");
    }

    [Category("Slow")]
    [Test]
    public void EachPromptsGradientIsItsRowsShareOfTheBatchLoss()
    {
        engine.LoadPrompts(prompts, layout);
        var mixed = Batch(rows, i => promptOf[i], layout);
        engine.ForwardBackward(mixed);
        var gradient = new float[layout.ValueCount(engine.EmbeddingSize)];
        engine.ReadPromptGradient(gradient);

        // The random prompts (P = 7, P = 1): the trained copy prompt's loss is near zero, so its gradient is the
        // rounding left by softmax − 1 cancelling, and any change of batch geometry moves it by a percent.
        foreach (int k in new[] { 1, 3 })
        {
            engine.LoadPrompts(Prompt(k), 1, Lengths[k]);
            var mine = Enumerable.Range(0, rows.Count).Where(i => promptOf[i] == k).Select(i => rows[i]).ToList();
            var alone = Batch(mine, _ => 0, engine.RequirePrompts());
            engine.ForwardBackward(alone);
            var aloneGradient = new float[Lengths[k] * engine.EmbeddingSize];
            engine.ReadPromptGradient(aloneGradient);
            // The batch's loss is the mean over all its targets: prompt k's rows weigh in with their share of them.
            float share = (float)alone.TargetCount / mixed.TargetCount;
            var expected = aloneGradient.Select(g => g * share).ToArray();
            Assert.That(expected.Max(Math.Abs), Is.GreaterThan(0f), $"prompt {k} has a gradient");
            AssertClose(gradient.AsSpan(layout.Offset(k) * engine.EmbeddingSize, expected.Length), expected, $"dPrompt {k} (P={Lengths[k]})");
        }
    }

    [Category("Slow")]
    [Test]
    public void DecodingWithPromptsOfDifferentLengthsEqualsDecodingEachAlone()
    {
        var inputs = rows.Select(r => r.Input).ToList();
        engine.LoadPrompts(prompts, layout);
        var mixed = GreedyDecoder.Generate(engine, inputs, promptOf, maxNewTokens: 12, stopToken: 22, batchSize: 4);
        for (int k = 0; k < Lengths.Length; k++)
        {
            engine.LoadPrompts(Prompt(k), 1, Lengths[k]);
            var mine = Enumerable.Range(0, rows.Count).Where(i => promptOf[i] == k).ToArray();
            var alone = GreedyDecoder.Generate(engine, [.. mine.Select(i => inputs[i])], 12, 22, batchSize: 4);
            for (int j = 0; j < mine.Length; j++) Assert.That(mixed[mine[j]], Is.EqualTo(alone[j]), $"row {mine[j]} (prompt {k}, P={Lengths[k]})");
        }
        Assert.That(Enumerable.Range(0, rows.Count).Where(i => promptOf[i] == 0).All(i => mixed[i].SequenceEqual(rows[i].Target)), "the copy prompt copies");
    }

    [Test]
    public void ABatchLaidOutForOtherLengthsIsRefused()
    {
        engine.LoadPrompts(prompts, layout);
        var uniform = Batch(rows.Take(2).ToList(), i => i, PromptLayout.Uniform(4, 4));
        var e = Assert.Throws<ArgumentException>(() => engine.Forward(uniform));
        Assert.That(e!.Message, Does.Contain("row 1").And.Contain("prompt 1 of length 4").And.Contain("has length 7"));
    }
}

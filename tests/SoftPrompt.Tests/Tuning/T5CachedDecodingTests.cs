using System.Numerics;
using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.T5;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// KV-cached decoding on the CPU T5 engine against full teacher-forced passes: the decoder logits at every step (slots
/// begun at different steps, prompts of different lengths, a slot restarted), and greedy tokens against uncached decoding.
/// Both tiny configs: v1.0-style (ReLU, tied head with the d^-0.5 rescale, 1 decoder layer) and v1.1-style (gated GELU,
/// own head, 3 decoder layers, encoder and decoder depths differ).
/// </summary>
public sealed class T5CachedDecodingTests
{
    private static readonly PromptLayout Layout = new([3, 5]);

    private static CpuT5Engine<T> Open<T>(bool gated) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var config = CpuT5GradientTests.TinyConfig(gated) with { RelativeMaxDistance = 6 }; // distances past max_distance share the last bucket
        var engine = new CpuT5Engine<T>(T5Weights<T>.CreateRandom(config, 5));
        engine.LoadPrompts(TestModels.RandomPrompts<T>(Layout.ValueCount(engine.EmbeddingSize), seed: 9), Layout);
        return engine;
    }

    /// <summary>The full pass's logits for the token after each row's generated tokens (decoder_start first).</summary>
    private static float[] FullLogits<T>(CpuT5Engine<T> engine, IReadOnlyList<(int Prompt, int[] Input, List<int> Generated)> rows)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int v = engine.VocabSize, longest = rows.Max(r => r.Input.Length + r.Generated.Count + 1);
        var batch = new TokenBatch(rows.Count, longest, Layout);
        batch.Reset(longest);
        foreach (var (prompt, input, generated) in rows) batch.AddRow(input, [.. generated, 0], prompt); // the placeholder is never read
        int decoder = rows.Max(r => r.Generated.Count + 1);
        var all = new float[rows.Count * decoder * v];
        engine.DecoderLogits(batch, all);
        var last = new float[rows.Count * v];
        for (int r = 0; r < rows.Count; r++) all.AsSpan((r * decoder + rows[r].Generated.Count) * v, v).CopyTo(last.AsSpan(r * v, v));
        return last;
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SessionLogitsEqualAFullPassAtEveryStep(bool gated)
    {
        using var engine = Open<double>(gated);
        using var session = engine.OpenDecoding(slots: 3, tokensPerSlot: 12);
        var rows = new List<(int Prompt, int[] Input, List<int> Generated)> { (0, [1, 5, 7], []), (1, [4], []), (1, [2, 2, 9, 3, 11], []) };
        void Begin(int slot, int prompt, int[] input)
        {
            session.Begin(slot, prompt, input);
            rows[slot] = (prompt, input, []);
        }
        void Step(params int[] slots)
        {
            var actual = new float[slots.Length * engine.VocabSize];
            session.NextTokenLogits(slots, actual);
            var expected = FullLogits(engine, [.. slots.Select(s => rows[s])]);
            Assert.That(actual, Is.EqualTo(expected).Within(1e-6), $"slots {string.Join(",", slots)}");
        }
        void Append(int slot, int token)
        {
            session.Append(slot, token);
            rows[slot].Generated.Add(token);
        }
        for (int s = 0; s < 3; s++) Begin(s, rows[s].Prompt, rows[s].Input);
        Step(0, 2);                         // slot 1 is encoded later, with a step of its own
        Append(0, 13);
        Append(2, 6);
        Step(1, 0, 2);
        Begin(1, 0, [8, 8, 3, 20]);          // restarted: a new input, its decoder from the start
        Append(0, 1);
        Append(2, 0);
        Step(0, 1, 2);
        for (int i = 0; i < 8; i++)          // past RelativeMaxDistance: every bucket, including the shared last one
        {
            for (int s = 0; s < 3; s++) Append(s, (5 * i + 7 * s) % engine.VocabSize);
            Step(2, 0, 1);
        }
    }

    /// <remarks>The v1.1-style config: the tiny v1.0-style one decodes one constant token, which would prove nothing.</remarks>
    [Test]
    public void CachedGreedyDecodingGivesTheTokensOfUncachedDecoding()
    {
        using var engine = Open<float>(gated: true);
        var random = new Random(3);
        var inputs = Enumerable.Range(0, 9).Select(_ => Enumerable.Range(0, random.Next(0, 7)).Select(_ => random.Next(engine.VocabSize)).ToArray()).ToList();
        var prompts = inputs.Select((_, i) => i % 3 == 1 ? 0 : 1).ToList();
        var free = GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: null, batchSize: 4, useCache: false);
        Assert.That(free.SelectMany(f => f).Distinct().Count(), Is.GreaterThan(3), "the model decodes more than a constant");
        bool ragged = false;
        // Stop tokens taken from the free run, so some rows stop early and others run to the limit.
        foreach (int? stop in new int?[] { null, free[0][1], free[1][3], free[2][2], free[3][0] })
        {
            var cached = GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: stop, batchSize: 4, useCache: true);
            var uncached = GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: stop, batchSize: 4, useCache: false);
            for (int i = 0; i < inputs.Count; i++) Assert.That(cached[i], Is.EqualTo(uncached[i]), $"row {i}, stop token {stop}");
            ragged |= cached.Select(c => c.Length).Distinct().Count() > 1;
        }
        Assert.That(ragged, "some run has rows finishing at different steps (slots reused mid-run)");
    }

    [Test]
    public void SamplingIsReproducibleWhateverTheBatchSize()
    {
        using var engine = Open<float>(gated: true);
        var inputs = Enumerable.Range(0, 5).Select(i => new[] { i + 1, (3 * i) % 23, 5 }).ToList();
        int[] prompts = [0, 1, 0, 1, 1];
        var sampling = new Sampling(Temperature: 1.5f, Seed: 11);
        var reference = GreedyDecoder.Generate(engine, inputs, prompts, 7, null, batchSize: 5, useCache: true, sampling);
        Assert.That(GreedyDecoder.Generate(engine, inputs, prompts, 7, null, batchSize: 2, useCache: true, sampling), Is.EqualTo(reference));
        Assert.That(reference, Is.Not.EqualTo(GreedyDecoder.Generate(engine, inputs, prompts, 7, null, 5)), "a hot temperature does not always pick the argmax");
        Assert.That(() => GreedyDecoder.Generate(engine, inputs, prompts, 7, null, 5, useCache: false, sampling),
            Throws.InstanceOf<NotSupportedException>().With.Message.Contains("KV-cached"));
    }

    [Test]
    public void MisuseIsRefusedWithTheSlotOrTokenNamed()
    {
        using var engine = Open<float>(gated: false);
        using var session = engine.OpenDecoding(slots: 2, tokensPerSlot: 3);
        Assert.That(() => session.Begin(0, 0, [engine.VocabSize]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains($"Token id {engine.VocabSize}"));
        Assert.That(() => session.Begin(2, 0, [1]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Slot 2"));
        Assert.That(() => session.Begin(0, 0, [1, 2, 3, 4]), Throws.ArgumentException.With.Message.Contains("does not fit"));
        Assert.That(() => session.NextTokens([1], new int[1]), Throws.InvalidOperationException.With.Message.Contains("Slot 1"));
        session.Begin(0, 0, [1, 2]);
        session.Append(0, 3);
        session.Append(0, 4);
        Assert.That(() => session.Append(0, 5), Throws.InvalidOperationException.With.Message.Contains("full"));
        Assert.That(() => session.NextTokens([0, 0], new int[2]), Throws.ArgumentException.With.Message.Contains("twice"));
    }
}

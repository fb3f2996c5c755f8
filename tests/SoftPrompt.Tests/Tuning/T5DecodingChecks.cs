using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.T5;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// The checks every T5 decoding session passes, on whichever engine (<see cref="T5CachedDecodingTests"/> on the CPU,
/// <see cref="DeviceT5CachedDecodingTests"/> on a device): logits at every step against the same engine's full
/// teacher-forced pass, cached greedy tokens against uncached ones, seeded sampling against the batch size. Both tiny
/// configs: v1.0-style (ReLU, tied head with the d^-0.5 rescale, 1 decoder layer) and v1.1-style (gated GELU, own head,
/// 3 decoder layers, encoder and decoder depths differ).
/// </summary>
internal static class T5DecodingChecks
{
    public static readonly PromptLayout Layout = new([3, 5]);

    /// <summary>Decoding runs past max_distance, so distances that share the last bucket are covered.</summary>
    public static T5Config Config(bool gated) => CpuT5GradientTests.TinyConfig(gated) with { RelativeMaxDistance = 6 };

    /// <summary>The full pass's logits for the token after each row's generated tokens (decoder_start first).</summary>
    private static float[] FullLogits(IEncoderDecoderEngine engine, IReadOnlyList<(int Prompt, int[] Input, List<int> Generated)> rows)
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

    /// <summary>Slots begun at different steps, prompts of different lengths, a slot restarted, decoding past max_distance.</summary>
    public static void SessionLogitsEqualAFullPassAtEveryStep(IEncoderDecoderEngine engine, double tolerance)
    {
        using var session = engine.OpenDecoding(slots: 3, tokensPerSlot: 12)!;
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
            Assert.That(actual, Is.EqualTo(expected).Within(tolerance), $"slots {string.Join(",", slots)}, generated {string.Join(",", slots.Select(s => rows[s].Generated.Count))}");
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

    /// <remarks>Use the v1.1-style config: the tiny v1.0-style one decodes one constant token, which would prove nothing.</remarks>
    public static void CachedGreedyDecodingGivesTheTokensOfUncachedDecoding(IPromptEngine engine)
    {
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
            var uncached = stop is null ? free : GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: stop, batchSize: 4, useCache: false);
            for (int i = 0; i < inputs.Count; i++) Assert.That(cached[i], Is.EqualTo(uncached[i]), $"row {i}, stop token {stop}");
            ragged |= cached.Select(c => c.Length).Distinct().Count() > 1;
        }
        Assert.That(ragged, "some run has rows finishing at different steps (slots reused mid-run)");
    }

    public static void SamplingIsReproducibleWhateverTheBatchSize(IPromptEngine engine)
    {
        var inputs = Enumerable.Range(0, 5).Select(i => new[] { i + 1, (3 * i) % 23, 5 }).ToList();
        int[] prompts = [0, 1, 0, 1, 1];
        var sampling = new Sampling(Temperature: 1.5f, Seed: 11);
        var reference = GreedyDecoder.Generate(engine, inputs, prompts, 7, null, batchSize: 5, useCache: true, sampling);
        Assert.That(GreedyDecoder.Generate(engine, inputs, prompts, 7, null, batchSize: 2, useCache: true, sampling), Is.EqualTo(reference));
        Assert.That(reference, Is.Not.EqualTo(GreedyDecoder.Generate(engine, inputs, prompts, 7, null, 5)), "a hot temperature does not always pick the argmax");
        Assert.That(() => GreedyDecoder.Generate(engine, inputs, prompts, 7, null, 5, useCache: false, sampling),
            Throws.InstanceOf<NotSupportedException>().With.Message.Contains("KV-cached"));
    }
}

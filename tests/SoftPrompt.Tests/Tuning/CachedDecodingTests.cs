using System.Numerics;
using SoftPrompt.Engines;
using SoftPrompt.Tests.Llama;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// KV-cached decoding on the decoder-only CPU engines against full forward passes over whole sequences: logits at every
/// step (prefill and decoding mixed in one step, prompts of different lengths, slots restarted) and greedy tokens.
/// </summary>
public sealed class CachedDecodingTests
{
    private static readonly PromptLayout Layout = new([3, 5]);

    public static IEnumerable<TestCaseData> Engines()
    {
        yield return new TestCaseData("gpt2").SetName("Gpt2");
        yield return new TestCaseData("llama").SetName("LlamaGroupedQuery");
    }

    private static CpuDecoderOnlyEngine<T> Open<T>(string family) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        CpuDecoderOnlyEngine<T> engine = family == "gpt2"
            ? new CpuGpt2Engine<T>(TestModels.Random<T>(TestModels.TinyConfig(vocab: 23, positions: 32), seed: 4))
            : new CpuLlamaEngine<T>(LlamaTestModels.Random<T>(LlamaTestModels.TinyConfig(), seed: 4));
        engine.LoadPrompts(TestModels.RandomPrompts<T>(Layout.ValueCount(engine.EmbeddingSize), seed: 9), Layout);
        return engine;
    }

    /// <summary>The full forward pass's next-token logits of whole sequences (prompt index, tokens).</summary>
    private static float[] FullLogits<T>(CpuDecoderOnlyEngine<T> engine, IReadOnlyList<(int Prompt, List<int> Tokens)> rows)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var batch = new TokenBatch(rows.Count, rows.Max(r => r.Tokens.Count), Layout);
        batch.Reset(rows.Max(r => r.Tokens.Count));
        foreach (var (prompt, tokens) in rows) batch.AddDecodingRow(tokens.ToArray(), prompt);
        var logits = new float[rows.Count * engine.VocabSize];
        engine.NextTokenLogits(batch, logits);
        return logits;
    }

    [TestCaseSource(nameof(Engines))]
    public void SessionLogitsEqualAFullForwardAtEveryStep(string family)
    {
        using var engine = Open<double>(family);
        using var session = engine.OpenDecoding(slots: 3, tokensPerSlot: 12);
        var sequences = new List<(int Prompt, List<int> Tokens)> { (0, [1, 5, 7]), (1, [4]), (1, [2, 2, 9, 3, 11]) };
        for (int s = 0; s < 3; s++) session.Begin(s, sequences[s].Prompt, sequences[s].Tokens.ToArray());

        void Step(int[] slots)
        {
            var actual = new float[slots.Length * engine.VocabSize];
            session.NextTokenLogits(slots, actual);
            var expected = FullLogits(engine, [.. slots.Select(s => sequences[s])]);
            Assert.That(actual, Is.EqualTo(expected).Within(1e-6), $"slots {string.Join(",", slots)}");
        }
        void Append(int slot, int token)
        {
            session.Append(slot, token);
            sequences[slot].Tokens.Add(token);
        }

        Step([0, 1, 2]);
        Append(2, 6);
        Append(0, 13);
        Step([2, 0]);
        Append(0, 1);
        session.Begin(1, 0, [8, 8, 3, 20]);
        sequences[1] = (0, [8, 8, 3, 20]);
        Append(2, 0);
        Step([1, 0, 2]);
        for (int i = 0; i < 4; i++)
        {
            for (int s = 0; s < 3; s++) Append(s, (5 * i + 7 * s) % engine.VocabSize);
            Step([0, 1, 2]);
        }
    }

    [TestCaseSource(nameof(Engines))]
    public void CachedGreedyDecodingGivesTheTokensOfUncachedDecoding(string family)
    {
        using var engine = Open<float>(family);
        var random = new Random(3);
        var inputs = Enumerable.Range(0, 9).Select(_ => Enumerable.Range(0, random.Next(1, 7)).Select(_ => random.Next(engine.VocabSize)).ToArray()).ToList();
        var prompts = inputs.Select((_, i) => i % 3 == 1 ? 0 : 1).ToList();
        var free = GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: null, batchSize: 4, useCache: false);
        // Stop tokens taken from the free run, so some rows stop early and others run to the limit.
        foreach (int? stop in new int?[] { null, free[0][0], free[1][4] })
        {
            var cached = GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: stop, batchSize: 4, useCache: true);
            var uncached = GreedyDecoder.Generate(engine, inputs, prompts, maxNewTokens: 9, stopToken: stop, batchSize: 4, useCache: false);
            for (int i = 0; i < inputs.Count; i++) Assert.That(cached[i], Is.EqualTo(uncached[i]), $"row {i}, stop token {stop}");
            if (stop is not null)
                Assert.That(cached.Select(c => c.Length).Distinct().Count(), Is.GreaterThan(1), "rows finish at different steps");
        }
    }

    [Test]
    public void MisuseIsRefusedWithTheSlotOrTokenNamed()
    {
        using var engine = Open<float>("gpt2");
        using var session = engine.OpenDecoding(slots: 2, tokensPerSlot: 3);
        Assert.That(() => session.Begin(0, 0, [engine.VocabSize]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains($"Token id {engine.VocabSize}"));
        Assert.That(() => session.Begin(2, 0, [1]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Slot 2"));
        Assert.That(() => session.Begin(0, 2, [1]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Prompt 2"));
        Assert.That(() => session.NextTokens([1], new int[1]), Throws.InvalidOperationException.With.Message.Contains("Slot 1"));
        session.Begin(0, 0, [1, 2]);
        session.Append(0, 3);
        Assert.That(() => session.Append(0, 4), Throws.InvalidOperationException.With.Message.Contains("full"));
        Assert.That(() => session.NextTokens([0, 0], new int[2]), Throws.ArgumentException.With.Message.Contains("twice"));
    }
}

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
    private static readonly PromptLayout Layout = DecoderOnlyDecodingChecks.Layout;

    public static IEnumerable<TestCaseData> Engines()
    {
        yield return new TestCaseData("gpt2").SetName("Gpt2");
        yield return new TestCaseData("llama").SetName("LlamaGroupedQuery");
        yield return new TestCaseData("llama-biased").SetName("LlamaAttentionBias");
    }

    private static CpuDecoderOnlyEngine<T> Open<T>(string family) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        CpuDecoderOnlyEngine<T> engine = family switch
        {
            "gpt2" => new CpuGpt2Engine<T>(TestModels.Random<T>(TestModels.TinyConfig(vocab: 23, positions: 32), seed: 4)),
            "llama" => new CpuLlamaEngine<T>(LlamaTestModels.Random<T>(LlamaTestModels.TinyConfig(), seed: 4)),
            _ => new CpuLlamaEngine<T>(LlamaTestModels.Random<T>(LlamaTestModels.TinyConfig() with { QueryKeyValueBiases = true, OutputBias = true }, seed: 4)),
        };
        engine.LoadPrompts(TestModels.RandomPrompts<T>(Layout.ValueCount(engine.EmbeddingSize), seed: 9), Layout);
        return engine;
    }

    [TestCaseSource(nameof(Engines))]
    public void SessionLogitsEqualAFullForwardAtEveryStep(string family)
    {
        using var engine = Open<double>(family);
        DecoderOnlyDecodingChecks.SessionLogitsEqualAFullForwardAtEveryStep(engine, tolerance: 1e-6);
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

    [TestCaseSource(nameof(Engines))]
    public void ANewSessionReusesTheLastOnesBuffersAndReadsNothingStale(string family)
    {
        using var engine = Open<double>(family);
        var first = engine.OpenDecoding(slots: 3, tokensPerSlot: 12);
        for (int s = 0; s < 3; s++) first.Begin(s, s % 2, [.. Enumerable.Range(0, 10).Select(i => (7 * i + s) % engine.VocabSize)]);
        first.NextTokens([0, 1, 2], new int[3]);
        first.Dispose();
        Assert.That(() => first.NextTokens([0], new int[1]), Throws.InstanceOf<ObjectDisposedException>());

        // Different prompts, fewer and shorter slots: the cache rows the first session wrote are reused, never read.
        engine.LoadPrompts(TestModels.RandomPrompts<double>(Layout.ValueCount(engine.EmbeddingSize), seed: 17), Layout);
        long before = GC.GetAllocatedBytesForCurrentThread();
        using var second = engine.OpenDecoding(slots: 2, tokensPerSlot: 5);
        long opened = GC.GetAllocatedBytesForCurrentThread() - before;
        using var freshEngine = Open<double>(family);
        before = GC.GetAllocatedBytesForCurrentThread();
        freshEngine.OpenDecoding(slots: 2, tokensPerSlot: 5).Dispose();
        long fresh = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(opened, Is.LessThan(fresh / 2), "the second session allocated a cache and scratch of its own");

        var sequences = new List<(int Prompt, List<int> Tokens)> { (1, [3, 4]), (0, [9]) };
        second.Begin(0, 1, [3, 4]);
        second.Begin(1, 0, [9]);
        for (int step = 0; step < 3; step++)
        {
            var actual = new float[2 * engine.VocabSize];
            second.NextTokenLogits([0, 1], actual);
            Assert.That(actual, Is.EqualTo(DecoderOnlyDecodingChecks.FullLogits(engine, sequences)).Within(1e-6), $"step {step}");
            for (int s = 0; s < 2; s++)
            {
                second.Append(s, (s + 5 * step) % engine.VocabSize);
                sequences[s].Tokens.Add((s + 5 * step) % engine.VocabSize);
            }
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

/// <summary>Sampling: per-row generators make answers independent of the batch; temperature, top-k and top-p shape the draws.</summary>
public sealed class SamplingTests
{
    private static CpuGpt2Engine<float> Open()
    {
        var engine = new CpuGpt2Engine<float>(TestModels.Random<float>(TestModels.TinyConfig(vocab: 23, positions: 32), seed: 4));
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 3 * engine.EmbeddingSize, seed: 9), 2, 3);
        return engine;
    }

    private static readonly List<int[]> Inputs = [.. Enumerable.Range(0, 7).Select(i => new[] { i + 1, (3 * i) % 23, 5 })];
    private static readonly int[] Prompts = [0, 1, 0, 1, 1, 0, 0];

    [Test]
    public void ASeededRunIsReproducibleAndIndependentOfTheBatchSize()
    {
        using var engine = Open();
        var sampling = new Sampling(Temperature: 1.5f, Seed: 11);
        var reference = GreedyDecoder.Generate(engine, Inputs, Prompts, 8, null, batchSize: 7, useCache: true, sampling);
        foreach (int batch in new[] { 1, 3 })
            Assert.That(GreedyDecoder.Generate(engine, Inputs, Prompts, 8, null, batch, useCache: true, sampling), Is.EqualTo(reference), $"batch {batch}");
        Assert.That(GreedyDecoder.Generate(engine, Inputs, Prompts, 8, null, 2, useCache: false, sampling), Is.EqualTo(reference), "uncached");
        var other = GreedyDecoder.Generate(engine, Inputs, Prompts, 8, null, 7, useCache: true, sampling with { Seed = 12 });
        Assert.That(other, Is.Not.EqualTo(reference), "another seed draws otherwise");
        var greedy = GreedyDecoder.Generate(engine, Inputs, Prompts, 8, null, 7, useCache: true);
        Assert.That(reference, Is.Not.EqualTo(greedy), "a hot temperature does not always pick the argmax");
    }

    [Test]
    public void TopKOfOneAndATinyTopPAreGreedy()
    {
        using var engine = Open();
        var greedy = GreedyDecoder.Generate(engine, Inputs, Prompts, 6, null, 4);
        Assert.That(GreedyDecoder.Generate(engine, Inputs, Prompts, 6, null, 4, true, new Sampling(Temperature: 3, TopK: 1, Seed: 5)), Is.EqualTo(greedy));
        Assert.That(GreedyDecoder.Generate(engine, Inputs, Prompts, 6, null, 4, true, new Sampling(Temperature: 1, TopP: 1e-6f, Seed: 5)), Is.EqualTo(greedy));
    }

    [Test]
    public void DrawsFollowTheSoftmaxOfTheScaledLogits()
    {
        float[] logits = [2f, 1f, 0f, -1f];
        var random = new Random(1);
        foreach (var (sampling, expected) in new[]
        {
            (new Sampling(Temperature: 1), Softmax(logits, 1)),
            (new Sampling(Temperature: 2), Softmax(logits, 2)),
            (new Sampling(Temperature: 1, TopK: 2), Normalized(Softmax(logits, 1), 2)),
        })
        {
            var sampler = new TokenSampler(sampling, logits.Length);
            var counts = new int[logits.Length];
            const int draws = 40000;
            for (int i = 0; i < draws; i++) counts[sampler.Sample(logits, random)]++;
            for (int t = 0; t < logits.Length; t++) Assert.That(counts[t] / (double)draws, Is.EqualTo(expected[t]).Within(0.01), $"{sampling}, token {t}");
        }
    }

    [Test]
    public void NonsenseSettingsAreRefused()
    {
        Assert.That(() => new Sampling(Temperature: 0).Validate(), Throws.ArgumentException.With.Message.Contains("Temperature"));
        Assert.That(() => new Sampling(TopK: -1).Validate(), Throws.ArgumentException.With.Message.Contains("TopK"));
        Assert.That(() => new Sampling(TopP: 1.5f).Validate(), Throws.ArgumentException.With.Message.Contains("TopP"));
    }

    private static double[] Softmax(float[] logits, double temperature)
    {
        var e = logits.Select(l => Math.Exp(l / temperature)).ToArray();
        return [.. e.Select(x => x / e.Sum())];
    }

    private static double[] Normalized(double[] p, int keep)
    {
        double kept = p.Take(keep).Sum();
        return [.. p.Select((x, i) => i < keep ? x / kept : 0)];
    }
}

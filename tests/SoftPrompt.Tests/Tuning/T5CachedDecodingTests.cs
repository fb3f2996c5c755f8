using System.Numerics;
using SoftPrompt.Engines;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// KV-cached decoding on the CPU T5 engine against full teacher-forced passes and uncached decoding
/// (<see cref="T5DecodingChecks"/>, shared with the device engine's tests).
/// </summary>
public sealed class T5CachedDecodingTests
{
    private static CpuT5Engine<T> Open<T>(bool gated) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var engine = new CpuT5Engine<T>(T5Weights<T>.CreateRandom(T5DecodingChecks.Config(gated), 5));
        engine.LoadPrompts(TestModels.RandomPrompts<T>(T5DecodingChecks.Layout.ValueCount(engine.EmbeddingSize), seed: 9), T5DecodingChecks.Layout);
        return engine;
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SessionLogitsEqualAFullPassAtEveryStep(bool gated)
    {
        using var engine = Open<double>(gated);
        T5DecodingChecks.SessionLogitsEqualAFullPassAtEveryStep(engine, tolerance: 1e-6);
    }

    [Test]
    public void CachedGreedyDecodingGivesTheTokensOfUncachedDecoding()
    {
        using var engine = Open<float>(gated: true);
        T5DecodingChecks.CachedGreedyDecodingGivesTheTokensOfUncachedDecoding(engine);
    }

    [Test]
    public void SamplingIsReproducibleWhateverTheBatchSize()
    {
        using var engine = Open<float>(gated: true);
        T5DecodingChecks.SamplingIsReproducibleWhateverTheBatchSize(engine);
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

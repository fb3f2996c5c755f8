using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// KV-cached decoding on the device T5 engine (<see cref="DeviceT5DecodingSession"/>) against the same engine's full
/// teacher-forced passes and uncached decoding (<see cref="T5DecodingChecks"/>, shared with the CPU engine's tests).
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class DeviceT5CachedDecodingTests(DeviceKind kind)
{
    private CudaT5Engine Open(bool gated, bool bf16 = false)
    {
        var engine = new CudaT5Engine(TestDevices.Open(kind), T5Weights<float>.CreateRandom(T5DecodingChecks.Config(gated), 5), ownsDevice: true, bf16: bf16);
        engine.LoadPrompts(TestModels.RandomPrompts<float>(T5DecodingChecks.Layout.ValueCount(engine.EmbeddingSize), seed: 9), T5DecodingChecks.Layout);
        return engine;
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SessionLogitsEqualAFullPassAtEveryStep(bool gated)
    {
        using var engine = Open(gated);
        T5DecodingChecks.SessionLogitsEqualAFullPassAtEveryStep(engine, tolerance: 1e-4);
    }

    [Test]
    public void CachedGreedyDecodingGivesTheTokensOfUncachedDecoding()
    {
        using var engine = Open(gated: true);
        T5DecodingChecks.CachedGreedyDecodingGivesTheTokensOfUncachedDecoding(engine);
    }

    /// <summary>An input long enough that cross-attention spreads over several splits, and self-attention past one split with its bias.</summary>
    [Test]
    public void LongInputsAndAnswersSpanSeveralAttentionSplits()
    {
        using var engine = Open(gated: true);
        var random = new Random(5);
        int[] input = [.. Enumerable.Range(0, 150).Select(_ => random.Next(engine.VocabSize))];  // 155 encoder positions: three splits of 64
        using var session = engine.OpenDecoding(slots: 1, tokensPerSlot: 160);
        session.Begin(0, 1, input);
        var generated = new List<int>();
        var batch = new TokenBatch(1, input.Length + 80, T5DecodingChecks.Layout);
        var logits = new float[engine.VocabSize];
        for (int step = 0; step < 70; step++)
        {
            session.NextTokenLogits([0], logits);
            if (step is 0 or 65 or 69)  // one split of self-attention keys, then two
            {
                batch.Reset(input.Length + generated.Count + 1);
                batch.AddRow(input, [.. generated, 0], 1);
                var all = new float[(generated.Count + 1) * engine.VocabSize];
                engine.DecoderLogits(batch, all);
                Assert.That(logits, Is.EqualTo(all.AsSpan(generated.Count * engine.VocabSize).ToArray()).Within(1e-4), $"step {step}");
            }
            int token = (3 * step + 1) % engine.VocabSize;
            session.Append(0, token);
            generated.Add(token);
        }
    }

    [Test]
    public void SamplingIsReproducibleWhateverTheBatchSize()
    {
        using var engine = Open(gated: true);
        T5DecodingChecks.SamplingIsReproducibleWhateverTheBatchSize(engine);
    }

    /// <summary>bf16 weights: the step's GEMMs borrow the engine plan's bf16 operand buffer, grown for the session's encodings.</summary>
    [Test]
    public void Bf16SessionLogitsStayCloseToTheFullPass()
    {
        using var engine = Open(gated: true, bf16: true);
        T5DecodingChecks.SessionLogitsEqualAFullPassAtEveryStep(engine, tolerance: 1e-4);
    }

    [Test]
    public void StepsAllocateNothingOnTheHostOrTheDevice()
    {
        using var engine = Open(gated: true);
        var device = engine.Device as EmulatedDevice ?? throw new IgnoreException("the device's allocations are counted on the emulator");
        using var session = engine.OpenDecoding(slots: 2, tokensPerSlot: 8);
        DecodingAllocationChecks.StepsAllocateNothingOnTheHostOrTheDevice(session, device, "steps that encode");
    }
}

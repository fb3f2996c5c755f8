using SoftPrompt.Engines;
using SoftPrompt.Tests.Llama;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// Forward-only passes on the decoder-only CPU engines (scoring, logits, uncached decoding: what `predict` runs) keep one
/// set of per-layer tensors that every block reuses and no gradient buffers; a pass with the gradient then grows them
/// back to every layer's own set and gives the gradient a fresh engine gives.
/// </summary>
public sealed class ForwardOnlyActivationTests
{
    private static IPromptEngine Open(string family)
    {
        IPromptEngine engine = family == "gpt2"
            ? new CpuGpt2Engine<float>(TestModels.Random<float>(TestModels.TinyConfig(layers: 6), seed: 4))
            : new CpuLlamaEngine<float>(LlamaTestModels.Random<float>(LlamaTestModels.TinyConfig() with { Layers = 6 }, seed: 4));
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 3 * engine.EmbeddingSize, seed: 9), 2, 3);
        return engine;
    }

    private static long Allocated(Action pass)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        pass();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [TestCase("gpt2")]
    [TestCase("llama")]
    public void ForwardOnlyPassesShareTheLayersTensorsUntilAGradientIsAsked(string family)
    {
        using var reused = Open(family);
        using var fresh = Open(family);
        var batch = TestModels.MixedBatch(3, 2, reused.VocabSize);
        long forwardOnly = Allocated(() => reused.Forward(batch));
        long withGradient = Allocated(() => fresh.ForwardBackward(batch));
        Assert.That(forwardOnly, Is.LessThan(withGradient / 2), "bytes of a first forward-only pass against a first pass with the gradient (6 layers)");

        Assert.That(reused.ForwardBackward(batch), Is.EqualTo(fresh.ForwardBackward(batch)));
        var expected = new float[2 * 3 * fresh.EmbeddingSize];
        var actual = new float[expected.Length];
        fresh.ReadPromptGradient(expected);
        reused.ReadPromptGradient(actual);
        Assert.That(actual, Is.EqualTo(expected), "the gradient after forward-only passes");
        Assert.That(reused.Forward(batch), Is.EqualTo(fresh.Forward(batch)), "a forward-only pass on grown activations");
    }
}

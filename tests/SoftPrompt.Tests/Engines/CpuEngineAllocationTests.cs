using SoftPrompt.Engines;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// A training step on the CPU engine allocates nothing on the managed heap once its buffers exist. Counted on the
/// calling thread: other tests leave background threads (and tiered JIT) that allocate on their own.
/// </summary>
public sealed class CpuEngineAllocationTests
{
    [Test]
    public void TrainingStepsAllocateNothingAfterTheFirst()
    {
        var config = TestModels.TinyConfig(vocab: 50, positions: 40, embedding: 32, layers: 2, heads: 4, inner: 64);
        using var engine = new CpuGpt2Engine<float>(TestModels.Random<float>(config, seed: 4));
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 3 * config.Embedding, seed: 1), 2, 3);
        var batch = TestModels.MixedBatch(3, 2, config.VocabSize);
        var settings = new OptimizerSettings(OptimizerKind.AdamW, ClipNorm: 0.5f);
        for (int step = 1; step <= 2; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int step = 3; step <= 5; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, "bytes allocated by three training steps");
    }
}

/// <summary>The CUDA engine's step allocates nothing on the managed heap either (launch arguments live on the stack).</summary>
[TestFixture(SoftPrompt.Tests.Emulation.DeviceKind.Emulated)]
[TestFixture(SoftPrompt.Tests.Emulation.DeviceKind.Gpu, Category = "Gpu")]
public sealed class CudaEngineAllocationTests(SoftPrompt.Tests.Emulation.DeviceKind kind)
{
    /// <param name="bf16">bf16 precision too: its block GEMMs and its LM head (bf16 operands, bf16 d(logits)) allocate nothing either.</param>
    [Test]
    public void TrainingStepsAllocateNothingAfterTheFirst([Values(false, true)] bool bf16)
    {
        var config = TestModels.TinyConfig(vocab: 50, positions: 40, embedding: 32, layers: 2, heads: 4, inner: 64);
        using var engine = new CudaGpt2Engine(SoftPrompt.Tests.Emulation.TestDevices.Open(kind), TestModels.Random<float>(config, seed: 4), ownsDevice: true, bf16: bf16);
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 3 * config.Embedding, seed: 1), 2, 3);
        var batch = TestModels.MixedBatch(3, 2, config.VocabSize);
        var settings = new OptimizerSettings(OptimizerKind.AdamW, ClipNorm: 0.5f);
        for (int step = 1; step <= 2; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int step = 3; step <= 5; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, "bytes allocated by three training steps");
    }
}

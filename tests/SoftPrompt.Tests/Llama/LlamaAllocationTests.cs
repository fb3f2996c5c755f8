using SoftPrompt.Engines;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Llama;

/// <summary>
/// A Llama training step allocates nothing on the managed heap once its buffers exist, on the CPU engine and on the
/// CUDA engine (launch arguments on the stack), with two prompts of different lengths and clipping on.
/// Counted on the calling thread: other tests leave background threads that allocate on their own.
/// </summary>
[TestFixture("cpu")]
[TestFixture("cuda-emulated")]
[TestFixture("cuda", Category = "Gpu")]
public sealed class LlamaAllocationTests(string device)
{
    [Test]
    public void TrainingStepsAllocateNothingAfterTheFirst()
    {
        var config = LlamaTestModels.TinyConfig();
        var weights = LlamaTestModels.Random<float>(config, seed: 4);
        using IPromptEngine engine = device == "cpu" ? new CpuLlamaEngine<float>(weights)
            : new CudaLlamaEngine(TestDevices.Open(device == "cuda" ? DeviceKind.Gpu : DeviceKind.Emulated), weights, ownsDevice: true);
        var layout = new PromptLayout([3, 2]);
        engine.LoadPrompts(TestModels.RandomPrompts<float>(layout.ValueCount(config.Embedding), seed: 1), layout);
        var batch = new TokenBatch(4, 8, layout);
        batch.Reset(7);
        batch.AddRow([1, 5, 7], [2, 9], 0);
        batch.AddRow([], [4, 4, 3], 1);
        batch.AddRow([3, 3, 8, 11, 0], [6, 2], 0);
        batch.AddRow([10], [1], 1);
        var settings = new OptimizerSettings(OptimizerKind.AdamW, ClipNorm: 0.5f);
        for (int step = 1; step <= 2; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int step = 3; step <= 5; step++) { engine.ForwardBackward(batch); engine.OptimizerStep(settings, step, 1e-3f); }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.Zero, "bytes allocated by three training steps");
    }
}

using SoftPrompt.Cli;
using SoftPrompt.Cuda;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// Issue 16, NCCL: which collective a group uses (known from the device name before a model loads), the clear error
/// where `cuda` over several processes finds no libnccl.so.2 (simulated by looking for a file that does not exist, not
/// by changing the machine), and on a GPU the single-rank all-reduce and a training run through the NCCL path.
/// </summary>
public sealed class NcclCollectiveTests
{
    private static readonly string[] Missing = ["/nonexistent-softprompt-test/libnccl.so.2", "libnccl-softprompt-test-missing.so.2"];

    [Test]
    public void CudaOverSeveralProcessesWithoutLibncclFailsNamingItAndWhatToInstall()
    {
        var e = Assert.Throws<NcclException>(() => CollectiveChoice.For("cuda", 2, Missing))!;
        Assert.That(e.Message, Does.Contain("libnccl.so.2 was not found").And.Contain("libnccl-softprompt-test-missing.so.2"));
        Assert.That(e.Message, Does.Contain("nvidia-nccl-cu12").And.Contain("libnccl2").And.Contain(SoftPrompt.Cuda.Interop.CudaLibraries.LibraryDirectoryVariable));
        Assert.That(CliFlags.Translate(e.Message), Does.Contain("--device cuda sums the prompt gradients"));
    }

    [Test]
    public void OneProcessNeedsNoCollectiveAndTheCpuEnginesUseMpi()
    {
        Assert.That(CollectiveChoice.For("cuda", 1, Missing), Is.EqualTo(CollectiveBackend.None), "one process never loads NCCL");
        Assert.That(CollectiveChoice.For("cpu", 3, Missing), Is.EqualTo(CollectiveBackend.Mpi));
        Assert.That(CollectiveChoice.For("cuda-emulated", 2, Missing), Is.EqualTo(CollectiveBackend.Mpi));
    }

    /// <summary>GPU 0 with NCCL, or the test is skipped (no GPU; a GPU machine without libnccl says so).</summary>
    private static CudaDevice RequireGpuWithNccl()
    {
        var gpu = GpuTestEnvironment.RequireCuda();
        try { Nccl.Load(Nccl.Candidates()); }
        catch (NcclException e) { Assert.Ignore(e.Message); }
        return gpu;
    }

    [Test, Category("Gpu")]
    public void OneRanksAllReduceOfAKnownBufferIsTheBuffer()
    {
        var gpu = RequireGpuWithNccl();
        var values = Enumerable.Range(0, 1003).Select(i => (float)Math.Sin(i) * 1e3f).ToArray();
        using var buffer = gpu.Allocate<float>(values.Length);
        buffer.CopyFrom(values);
        using (var nccl = NcclCommunicator.Create(SingleProcess.Instance, gpu))
        {
            Assert.That((nccl.Rank, nccl.Size), Is.EqualTo((0, 1)));
            nccl.AllReduceSum(gpu, buffer.Span);
            gpu.Synchronize();
        }
        var back = new float[values.Length];
        buffer.CopyTo(back);
        Assert.That(back, Is.EqualTo(values));
        TestContext.Out.WriteLine($"NCCL {NcclCommunicator.Library}");
    }

    [Test, Category("Gpu")]
    public void TrainingThroughNcclAtWorldSizeOneEqualsThePlainRun()
    {
        var gpu = RequireGpuWithNccl();
        var rows = DemoModel.Rows("copy.train.jsonl", 24);
        var options = new TrainOptions(Steps: 8, BatchSize: 6, LearningRate: 0.1f, new OptimizerSettings(OptimizerKind.AdamW), Seed: 3, Shuffle: true);
        float[] Train(bool throughNccl)
        {
            using var model = EngineFactory.Open(DemoModel.Directory, "cuda");
            var engine = model.Engine;
            engine.LoadPrompts(TestModels.RandomPrompts<float>(4 * engine.EmbeddingSize, seed: 7), 1, 4);
            var reducer = throughNccl ? GradientAllReduce.OnDevice(SingleProcess.Instance, (CudaDevice)((DeviceEngine)engine).Device, 4 * engine.EmbeddingSize) : null;
            using var run = new TrainingRun(engine, rows, options, SingleProcess.Instance, reducer);
            Assert.That(run.Collective, Is.EqualTo(throughNccl ? CollectiveBackend.Nccl : CollectiveBackend.None));
            run.Run();
            return run.CurrentPrompt();
        }
        var plain = Train(throughNccl: false);
        var nccl = Train(throughNccl: true);
        // The group path weights each batch's gradient by its target count and scales by 1/targets: float rounding only.
        double largest = plain.Max(v => Math.Abs((double)v));
        Assert.That(plain.Zip(nccl).Max(p => Math.Abs((double)p.First - p.Second)) / largest, Is.LessThan(1e-4));
        Assert.That(gpu.Kind, Is.EqualTo("cuda"));
    }
}

using BenchmarkDotNet.Attributes;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Benchmarks;

/// <summary>
/// The GPT-2 kernels at gpt2-small training shapes (batch 16 × (prompt 100 + 256 tokens), d = 768, 12 heads,
/// 1024 target rows of the 50257-token vocabulary) on a GPU; at a small shape on the emulator. Each invocation
/// queues <see cref="Repeats"/> launches and waits once, so the figure is device time per launch.
/// </summary>
[MemoryDiagnoser]
public class KernelBenchmarks
{
    private const int Repeats = 20;
    private IComputeDevice device = null!;
    private int batch, sequence, channels, heads, rows, vocab, targetRows, promptLength;
    private DeviceBuffer<float> x = null!, y = null!, mean = null!, rstd = null!, weight = null!, bias = null!, dx = null!;
    private DeviceBuffer<float> qkv = null!, attention = null!, lse = null!, dqkv = null!, scratch = null!;
    private DeviceBuffer<float> logits = null!, rowLoss = null!, prompts = null!, promptGrad = null!, m = null!, v = null!, norm = null!;
    private DeviceBuffer<int> targets = null!, promptIndex = null!, promptOffsets = null!, fullToShared = null!, reduceStarts = null!, reduceIndex = null!;
    private int sharedRows;

    [GlobalSetup]
    public void Setup()
    {
        device = BenchDevices.Open();
        bool gpu = device is CudaDevice;
        (batch, sequence, channels, heads, vocab, targetRows, promptLength) = gpu ? (16, 356, 768, 12, 50257, 1024, 100) : (2, 40, 64, 4, 97, 16, 4);
        rows = batch * sequence;
        var random = new Random(1);
        DeviceBuffer<float> Random(long n, float scale = 1f)
        {
            var host = new float[n];
            for (long i = 0; i < n; i++) host[i] = (float)(random.NextDouble() - 0.5) * scale;
            var buffer = device.Allocate<float>(n);
            buffer.CopyFrom(host);
            return buffer;
        }
        x = Random((long)rows * channels); y = Random((long)rows * channels); dx = Random((long)rows * channels);
        mean = Random(rows); rstd = Random(rows); weight = Random(channels); bias = Random(channels);
        qkv = Random((long)rows * 3 * channels); attention = Random((long)rows * channels); lse = Random((long)rows * heads);
        dqkv = Random((long)rows * 3 * channels); scratch = Random((long)rows * heads);
        logits = Random((long)targetRows * vocab); rowLoss = Random(targetRows);
        prompts = Random((long)promptLength * channels); promptGrad = Random((long)promptLength * channels);
        m = Random((long)promptLength * channels); v = Random((long)promptLength * channels, 0.001f); norm = Random(GradientNorm.ScratchLength);
        targets = device.Allocate<int>(targetRows);
        targets.CopyFrom(Enumerable.Range(0, targetRows).Select(i => i * 7 % vocab).ToArray());
        promptIndex = device.Allocate<int>(batch);
        promptIndex.CopyFrom(new int[batch]);
        promptOffsets = device.Allocate<int>(2);
        promptOffsets.CopyFrom([0, promptLength]);
        // The shared-prompt maps of one prompt serving every row: the maps the decoder-only engines gather and reduce by.
        sharedRows = promptLength + batch * (sequence - promptLength);
        var toShared = new int[rows];
        var starts = new int[sharedRows + 1];
        var members = Enumerable.Range(0, sharedRows).Select(_ => new List<int>()).ToArray();
        for (int b = 0; b < batch; b++)
            for (int s = 0; s < sequence; s++)
            {
                int shared = s < promptLength ? s : promptLength + b * (sequence - promptLength) + s - promptLength;
                toShared[b * sequence + s] = shared;
                members[shared].Add(b * sequence + s);
            }
        for (int r = 0; r < sharedRows; r++) starts[r + 1] = starts[r] + members[r].Count;
        fullToShared = device.Allocate<int>(rows);
        fullToShared.CopyFrom(toShared);
        reduceStarts = device.Allocate<int>(sharedRows + 1);
        reduceStarts.CopyFrom(starts);
        reduceIndex = device.Allocate<int>(rows);
        reduceIndex.CopyFrom(members.SelectMany(m => m).ToArray());
        LayerNormForward.Launch(device, y.Span, mean.Span, rstd.Span, x.Span, weight.Span, bias.Span, rows, channels, 1e-5f);
        FusedQkvAttention.Forward(device, attention.Span, lse.Span, qkv.Span, batch, sequence, channels, heads);
        device.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => device.Dispose();

    private void Repeat(Action launch)
    {
        for (int i = 0; i < Repeats; i++) launch();
        device.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void LayerNormForwardKernel() => Repeat(() => LayerNormForward.Launch(device, y.Span, mean.Span, rstd.Span, x.Span, weight.Span, bias.Span, rows, channels, 1e-5f));

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void LayerNormBackwardKernel() => Repeat(() => LayerNormBackward.Launch(device, dx.Span, y.Span, x.Span, weight.Span, mean.Span, rstd.Span, rows, channels));

    /// <summary>GPT-2's causal attention on the fused qkv (kernels/attention.cu; more shapes in <see cref="AttentionKernelBenchmarks"/>).</summary>
    [Benchmark(OperationsPerInvoke = Repeats)]
    public void AttentionForwardKernel() => Repeat(() => FusedQkvAttention.Forward(device, attention.Span, lse.Span, qkv.Span, batch, sequence, channels, heads));

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void AttentionBackwardKernel() => Repeat(() => FusedQkvAttention.Backward(device, dqkv.Span, y.Span, qkv.Span, attention.Span, lse.Span, scratch.Span, batch, sequence, channels, heads));

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void CrossEntropyKernel() => Repeat(() => CrossEntropy.Launch(device, logits.Span, rowLoss.Span, targets.Span, targetRows, vocab, vocab, 0f));

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void PromptGradientKernel() => Repeat(() => PromptGradient.Launch(device, promptGrad.Span, x.Span, promptIndex.Span, promptOffsets.Span, promptLength, batch, sequence, channels, false));

    /// <summary>Attention's qkv gathered from the shared rows into the full layout [B·S, 3C] (once per layer, forward and backward).</summary>
    [Benchmark(OperationsPerInvoke = Repeats)]
    public void GatherQkvToFullKernel() => Repeat(() => GatherRows.Launch(device, dqkv.Span, qkv.Span, fullToShared.Span, rows, 3 * channels));

    /// <summary>The qkv gradient of the full layout reduced onto the shared rows (a prompt position sums over the batch).</summary>
    [Benchmark(OperationsPerInvoke = Repeats)]
    public void ReduceQkvToSharedKernel() => Repeat(() => GatherSumRows.Launch(device, qkv.Span, dqkv.Span, reduceStarts.Span, reduceIndex.Span, sharedRows, 3 * channels, false));

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void AdamWStepKernels() => Repeat(() =>
    {
        GradientNorm.Launch(device, norm.Span, promptGrad.Span, 1f, 1f);
        AdamWStep.Launch(device, prompts.Span, promptGrad.Span, m.Span, v.Span, norm.Slice(GradientNorm.ScaleOffset, 1), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 10);
    });
}

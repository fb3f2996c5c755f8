using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// The device memory of one (rows, positions) capacity: what the backward pass needs per layer and shared scratch, in
/// one float arena allocated once and reused every step (a step allocates nothing on the device); the batch's inputs
/// (<see cref="DecoderBatchInputs"/>) and the LM head (<see cref="DeviceDecoderHead"/>) keep their own. Per-layer
/// activations hold the shared layout's rows (each prompt's positions once, <see cref="SharedPromptRows"/>); attention
/// works on the full [rows, sequence] layout in the *Full scratch tensors, gathered from and reduced back to them.
/// </summary>
internal sealed class Gpt2DevicePlan : IDisposable
{
    private readonly DeviceBuffer<float> floats;
    private long floatOffset;

    public Gpt2DevicePlan(IComputeDevice device, Gpt2Config config, int rows, int positions, PromptLayout layout)
    {
        Rows = rows;
        Positions = positions;
        long n = positions, c = config.Embedding, inner = config.Inner, heads = config.Heads;
        long perLayer = Aligned(n * c) * 4 + Aligned(n) * 4 + Aligned(n * 3 * c) + Aligned(n * heads) + Aligned(n * inner);
        long shared = Aligned(n * c) * 7 + Aligned((n + 1) * c) + Aligned(n) * 2 + Aligned(n * 3 * c) * 3 + Aligned(n * inner) * 2 + Aligned(n * heads);
        floats = device.Allocate<float>(perLayer * config.Layers + shared);
        Inputs = new DecoderBatchInputs(device, rows, positions, layout);
        Head = new DeviceDecoderHead(device, config.Embedding, config.VocabSize, positions);
        Bytes = floats.Length * sizeof(float) + Inputs.Bytes + Head.Bytes;

        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
            Layers[l] = new Layer(Input: F(n * c), Mean1: F(n), Rstd1: F(n), Qkv: F(n * 3 * c), Attention: F(n * c), LogSumExp: F(n * heads),
                Middle: F(n * c), Mean2: F(n), Rstd2: F(n), Hidden: F(n * inner));
        Final = F(n * c); FinalMean = F(n); FinalRstd = F(n); FinalNorm = F(n * c);
        Norm = F(n * c); Projection = F((n + 1) * c); Wide = F(n * inner); Gradient = F(n * c); GradientNext = F(n * c);
        GradientQkv = F(n * 3 * c); GradientWide = F(n * inner); AttentionScratch = F(n * heads);
        QkvFull = F(n * 3 * c); GradientQkvFull = F(n * 3 * c); AttentionFull = F(n * c); GradientAttentionFull = F(n * c);
    }

    private static long Aligned(long count) => (count + 63) / 64 * 64;
    private DeviceSpan<float> F(long count) { var s = floats.Slice(floatOffset, count); floatOffset += Aligned(count); return s; }

    public int Rows { get; }
    public int Positions { get; }
    public PromptLayout Layout => Inputs.Layout;
    /// <summary>The batch's token ids, prompts, targets and shared-row maps.</summary>
    public DecoderBatchInputs Inputs { get; }
    public DeviceDecoderHead Head { get; }
    public long Bytes { get; }

    public readonly record struct Layer(DeviceSpan<float> Input, DeviceSpan<float> Mean1, DeviceSpan<float> Rstd1, DeviceSpan<float> Qkv,
        DeviceSpan<float> Attention, DeviceSpan<float> LogSumExp, DeviceSpan<float> Middle, DeviceSpan<float> Mean2, DeviceSpan<float> Rstd2, DeviceSpan<float> Hidden);

    public Layer[] Layers { get; }
    public DeviceSpan<float> Final { get; }
    public DeviceSpan<float> FinalMean { get; }
    public DeviceSpan<float> FinalRstd { get; }
    public DeviceSpan<float> FinalNorm { get; }
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> Projection { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> Gradient { get; }
    public DeviceSpan<float> GradientNext { get; }
    public DeviceSpan<float> GradientQkv { get; }
    public DeviceSpan<float> GradientWide { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    /// <summary>Full-layout [rows·sequence, ·] scratch for attention: its qkv and output gathered from the shared rows, and their gradients.</summary>
    public DeviceSpan<float> QkvFull { get; }
    public DeviceSpan<float> GradientQkvFull { get; }
    public DeviceSpan<float> AttentionFull { get; }
    public DeviceSpan<float> GradientAttentionFull { get; }

    public void Dispose()
    {
        floats.Dispose();
        Inputs.Dispose();
        Head.Dispose();
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// The device twin of <see cref="LlamaCpuActivations{T}"/>: everything the CUDA Llama engine keeps for one (rows,
/// positions) capacity, carved out of one float and one int allocation, reused step after step (a step allocates nothing
/// on the device). Per-layer activations hold the shared layout's rows (each prompt's positions once,
/// <see cref="SharedPromptRows"/>); attention works on the full [rows, sequence] layout in the *Full scratch tensors. The
/// batch's inputs (<see cref="DecoderBatchInputs"/>) and the LM head (<see cref="DeviceDecoderHead"/>) keep their own buffers.
/// </summary>
internal sealed class LlamaDevicePlan : IDisposable
{
    private readonly DeviceBuffer<float> floats;
    private long floatOffset;

    public LlamaDevicePlan(IComputeDevice device, LlamaConfig config, int rows, int positions, int sequence, PromptLayout layout)
    {
        Rows = rows;
        Positions = positions;
        Sequence = sequence;
        long n = positions, d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, heads = config.Heads;
        long perLayer = A(n * d) * 2 + A(n) * 2 + A(n * a) * 2 + A(n * kv) * 2 + A(n * heads) + A(n * ff) * 2;
        long shared = A(n * d) * 5 + A(n) + A(n * kv) * 2 + A(n * ff) * 3 + A(n * a) + A((n + 1) * a) + A(n * heads) + A(sequence * d)
            + A(n * a) * 8 + A(n * kv) * 2 + A(n * d);
        floats = device.Allocate<float>(perLayer * config.Layers + shared);
        Inputs = new DecoderBatchInputs(device, rows, positions, layout);
        Head = new DeviceDecoderHead(device, config.Embedding, config.VocabSize, positions);
        Bytes = floats.Length * sizeof(float) + Inputs.Bytes + Head.Bytes;

        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
            Layers[l] = new Layer(Input: F(n * d), Rstd1: F(n), Query: F(n * a), Key: F(n * kv), Value: F(n * kv), Attention: F(n * a),
                LogSumExp: F(n * heads), Middle: F(n * d), Rstd2: F(n), Gate: F(n * ff), Up: F(n * ff));
        Final = F(n * d); FinalRstd = F(n); FinalNorm = F(n * d); Norm = F(n * d);
        KeyNarrow = F(n * kv); ValueNarrow = F(n * kv); Wide = F(n * ff);
        Gradient = F(n * d); GradientNext = F(n * d);
        GradientQuery = F(n * a); GradientAttention = F((n + 1) * a);
        GradientGate = F(n * ff); GradientUp = F(n * ff);
        AttentionScratch = F(n * heads);
        ZeroPositions = F(sequence * d);
        QueryFull = F(n * a); KeyFull = F(n * a); ValueFull = F(n * a); AttentionFull = F(n * a); GradientAttentionFull = F(n * a);
        GradientQueryFull = F(n * a); GradientKeyFull = F(n * a); GradientValueFull = F(n * a);
        KeyNarrowFull = F(n * kv); ValueNarrowFull = F(n * kv); FullScratch = F(n * d);
        device.Zero(ZeroPositions);
    }

    private static long A(long count) => (count + 63) / 64 * 64;
    private DeviceSpan<float> F(long count) { var s = floats.Slice(floatOffset, count); floatOffset += A(count); return s; }

    public int Rows { get; }
    /// <summary>Most rows·sequence positions a batch may have.</summary>
    public int Positions { get; }
    /// <summary>Longest sequence a batch may have (the zero position table's length).</summary>
    public int Sequence { get; }
    public PromptLayout Layout => Inputs.Layout;
    /// <summary>The batch's token ids, prompts, targets and shared-row maps.</summary>
    public DecoderBatchInputs Inputs { get; }
    public DeviceDecoderHead Head { get; }
    public long Bytes { get; }

    /// <summary>Shared rows: the q, k, v projections before RoPE (k and v at their own kv width), attention output, the SwiGLU branches.</summary>
    public readonly record struct Layer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, DeviceSpan<float> Query, DeviceSpan<float> Key,
        DeviceSpan<float> Value, DeviceSpan<float> Attention, DeviceSpan<float> LogSumExp, DeviceSpan<float> Middle, DeviceSpan<float> Rstd2,
        DeviceSpan<float> Gate, DeviceSpan<float> Up);

    public Layer[] Layers { get; }
    public DeviceSpan<float> Final { get; }
    public DeviceSpan<float> FinalRstd { get; }
    public DeviceSpan<float> FinalNorm { get; }
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> KeyNarrow { get; }
    public DeviceSpan<float> ValueNarrow { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> Gradient { get; }
    public DeviceSpan<float> GradientNext { get; }
    public DeviceSpan<float> GradientQuery { get; }
    public DeviceSpan<float> GradientAttention { get; }
    public DeviceSpan<float> GradientGate { get; }
    public DeviceSpan<float> GradientUp { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    /// <summary>Full-layout scratch for attention: rotated (and scaled) q, rotated k and v repeated to every query head, their narrow forms, the output, and gradients.</summary>
    public DeviceSpan<float> QueryFull { get; }
    public DeviceSpan<float> KeyFull { get; }
    public DeviceSpan<float> ValueFull { get; }
    public DeviceSpan<float> KeyNarrowFull { get; }
    public DeviceSpan<float> ValueNarrowFull { get; }
    public DeviceSpan<float> AttentionFull { get; }
    public DeviceSpan<float> GradientAttentionFull { get; }
    public DeviceSpan<float> GradientQueryFull { get; }
    public DeviceSpan<float> GradientKeyFull { get; }
    public DeviceSpan<float> GradientValueFull { get; }
    /// <summary>[rows·sequence, d]: the full-layout embeddings at the start of a step, every target's head gradient at its end.</summary>
    public DeviceSpan<float> FullScratch { get; }
    /// <summary>Zeros [Sequence, d]: the embedding kernel's position table (Llama has none; RoPE rotates q and k instead).</summary>
    public DeviceSpan<float> ZeroPositions { get; }

    public void Dispose()
    {
        floats.Dispose();
        Inputs.Dispose();
        Head.Dispose();
    }
}

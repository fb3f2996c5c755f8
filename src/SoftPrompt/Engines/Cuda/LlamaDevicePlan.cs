using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// A Llama-style model's device memory for one (rows, positions, sequence) capacity, one arena reused every step (the
/// twin of <see cref="LlamaCpuActivations{T}"/>): per block what its reverse pass reads (shared rows), and scratch,
/// including attention's full layout: rotated (and scaled) q, rotated k and v (repeated to every query head unless
/// attention reads the groups in place), the output, and gradients. In bf16 precision attention's operands (full-layout
/// q, k, v; shared-row v) and its output are bf16 (their fp32 spans empty); the q/k projections and the gradients stay fp32.
/// </summary>
internal sealed class LlamaDevicePlan : DecoderDevicePlan
{
    /// <param name="bf16">The weights are bf16: hold a bf16 copy of the largest GEMM activation operand.</param>
    /// <param name="recomputes">Keep each layer's input only; its other saved tensors live in one set every layer reuses.</param>
    public static LlamaDevicePlan Allocate(IComputeDevice device, LlamaConfig config, int rows, int positions, int sequence, PromptLayout layout, bool bf16 = false, bool recomputes = false)
        => DeviceArena.Allocate(device, "llama plan", carve => new LlamaDevicePlan(carve, config, rows, positions, sequence, layout, bf16, recomputes));

    /// <summary>The plan's layout and size without a device.</summary>
    public static LlamaDevicePlan Measure(LlamaConfig config, int rows, int positions, int sequence, PromptLayout layout, bool bf16 = false, bool recomputes = false)
        => DeviceArena.Measure("llama plan", carve => new LlamaDevicePlan(carve, config, rows, positions, sequence, layout, bf16, recomputes));

    /// <summary>A plan for <paramref name="batch"/> and its capacity (up to the model's sequence limit), grown to cover <paramref name="current"/> so alternating shapes settle on one plan.</summary>
    public static (int Rows, int Positions, int Sequence) Capacity(LlamaConfig config, TokenBatch batch, LlamaDevicePlan? current)
    {
        int capacitySequence = Math.Min(config.SequenceLimit, batch.LongestPrompt + batch.TokenCapacity);
        int rows = Math.Max(batch.Rows, batch.RowCapacity);
        int positions = Math.Max(batch.Rows * batch.SequenceLength, batch.RowCapacity * capacitySequence);
        int sequence = Math.Max(capacitySequence, batch.SequenceLength);
        return (Math.Max(rows, current?.Rows ?? 0), Math.Max(positions, current?.Positions ?? 0), Math.Max(sequence, current?.Sequence ?? 0));
    }

    private LlamaDevicePlan(ArenaCarver carve, LlamaConfig config, int rows, int positions, int sequence, PromptLayout layout, bool bf16, bool recomputes)
        : base(carve, rows, positions, config.Embedding, config.VocabSize, layout, bf16, recomputes)
    {
        Sequence = sequence;
        long n = positions, d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, heads = config.Heads;
        DeviceSpan<float> F(string name, long count) => carve.Take<float>(name, count);
        // An activation stored in the precision's type: the other type's span is empty.
        DeviceSpan<float> F32(string name, long count) => F(name, bf16 ? 0 : count);
        DeviceSpan<ushort> B16(string name, long count) => carve.Take<ushort>(name + "_bf16", bf16 ? count : 0);

        carve.Kind = DeviceMemoryKind.Activations;
        Layer Saved(int? layer)
        {
            string at = RecomputedLayers.Prefix("layers", layer);
            return new(Input: default, Rstd1: F(at + "input_layernorm.rstd", n), Query: F(at + "q", n * a), Key: F(at + "k", n * kv),
                Value: F32(at + "v", n * kv), Attention: F32(at + "attention", n * a), LogSumExp: F(at + "logsumexp", n * heads), Middle: F(at + "middle", n * d),
                Rstd2: F(at + "post_attention_layernorm.rstd", n), Gate: F32(at + "gate", n * ff), Up: F32(at + "up", n * ff),
                GateBf16: B16(at + "gate", n * ff), UpBf16: B16(at + "up", n * ff),
                ValueBf16: B16(at + "v", n * kv), AttentionBf16: B16(at + "attention", n * a));
        }
        Layers = RecomputedLayers.Carve(config.Layers, recomputes, l => F($"layers.{l}.input", n * d), Saved, (saved, input) => saved with { Input = input });
        FinalRstd = F("norm.rstd", n);

        carve.Kind = DeviceMemoryKind.Workspace;
        // q/k/v's output gradients summed over the shared rows: in bf16 the reduction writes them into bf16_operands instead.
        KeyNarrow = F32("k_narrow", n * kv); ValueNarrow = F32("v_narrow", n * kv); Wide = F("wide", n * ff);
        GradientQuery = F32("gradient_q", n * a); GradientAttention = F("gradient_attention", (n + 1) * a);
        // In bf16 SwiGLU's input gradients are only the gate/up input-gradient GEMMs' operands: d(gate) goes into
        // bf16_operands, d(up) into its own bf16 buffer.
        GradientGate = F("gradient_gate", bf16 ? 0 : n * ff); GradientUp = F("gradient_up", bf16 ? 0 : n * ff);
        GradientUpBf16 = carve.Take<ushort>("gradient_up_bf16", bf16 ? n * ff : 0);
        AttentionScratch = F("attention_scratch", n * heads);
        ZeroPositions = carve.Zeroed<float>("zero_positions", sequence * d);
        // Attention reads grouped-query k/v in place (no repeated copies; its k/v gradients come out narrow) on the bf16
        // tensor-core kernels; the fp32 kernels and other head sizes get k and v repeated to every query head.
        GroupsInPlace = ReadsGroupsInPlace(config, bf16);
        long repeated = GroupsInPlace ? 0 : n * a, kvGradient = GroupsInPlace ? n * kv : n * a;
        QueryFull = F32("q_full", n * a); KeyFull = F32("k_full", repeated); ValueFull = F32("v_full", repeated);
        QueryFullBf16 = B16("q_full", n * a); KeyFullBf16 = B16("k_full", repeated); ValueFullBf16 = B16("v_full", repeated);
        AttentionFull = F32("attention_full", n * a); AttentionFullBf16 = B16("attention_full", n * a); GradientAttentionFull = F("gradient_attention_full", n * a);
        GradientQueryFull = F("gradient_q_full", n * a); GradientKeyFull = F("gradient_k_full", kvGradient); GradientValueFull = F("gradient_v_full", kvGradient);
        // The fp32 narrow k/v also take the repeated heads' summed gradients; bf16 k/v leave them to that alone.
        long narrowFp32 = bf16 && GroupsInPlace ? 0 : n * kv;
        KeyNarrowFull = F("k_narrow_full", narrowFp32); ValueNarrowFull = F("v_narrow_full", narrowFp32);
        KeyNarrowFullBf16 = B16("k_narrow_full", n * kv); ValueNarrowFullBf16 = B16("v_narrow_full", n * kv);
        FullScratch = F("full_scratch", n * d);
        // A GEMM's activation operand: [n, d] into q/k/v/gate/up (and out of o, down backward), [n, a] into o, [n, ff] into down.
        Bf16Operands = carve.Take<ushort>("bf16_operands", bf16 ? n * Math.Max(d, Math.Max(a, ff)) : 0);
    }

    /// <summary>Whether attention reads each query head's kv head in place: bf16 on the tensor-core kernels (head size 64 or 128).</summary>
    public static bool ReadsGroupsInPlace(LlamaConfig config, bool bf16) => bf16 && AttentionTensorCores.Supports(config.HeadSize);

    /// <summary>Attention reads grouped-query k/v in place (<see cref="ReadsGroupsInPlace"/>): <see cref="KeyFull"/> and <see cref="ValueFull"/>
    /// are empty and <see cref="GradientKeyFull"/>, <see cref="GradientValueFull"/> are [n, kv].</summary>
    public bool GroupsInPlace { get; }

    /// <summary>The bf16 copy of a GEMM's activation operand when the weights are bf16 (else empty).</summary>
    public DeviceSpan<ushort> Bf16Operands { get; }

    /// <summary>Longest sequence a batch may have (the zero position table's length).</summary>
    public int Sequence { get; }

    /// <summary>
    /// Shared rows: the q, k, v projections before RoPE (k and v at their own kv width; q and k fp32 in both precisions: RoPE
    /// rounds them once), attention output, the SwiGLU branches (<see cref="Value"/>, <see cref="Attention"/>, <see cref="Gate"/>,
    /// <see cref="Up"/> in fp32 precision, <see cref="ValueBf16"/> … <see cref="UpBf16"/> in bf16, the others empty).
    /// </summary>
    public readonly record struct Layer(DeviceSpan<float> Input, DeviceSpan<float> Rstd1, DeviceSpan<float> Query, DeviceSpan<float> Key,
        DeviceSpan<float> Value, DeviceSpan<float> Attention, DeviceSpan<float> LogSumExp, DeviceSpan<float> Middle, DeviceSpan<float> Rstd2,
        DeviceSpan<float> Gate, DeviceSpan<float> Up, DeviceSpan<ushort> GateBf16, DeviceSpan<ushort> UpBf16,
        DeviceSpan<ushort> ValueBf16, DeviceSpan<ushort> AttentionBf16);

    public Layer[] Layers { get; }
    public DeviceSpan<float> FinalRstd { get; }
    /// <summary>fp32 precision: q/k/v's output gradients summed over the shared rows, the input-gradient GEMMs' operands (bf16: empty, see <see cref="Bf16Operands"/>).</summary>
    public DeviceSpan<float> KeyNarrow { get; }
    public DeviceSpan<float> ValueNarrow { get; }
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<float> GradientQuery { get; }
    /// <summary>[n + 1, a]: o_proj's input gradient, with a zero row past the shared rows for repeated prompt positions.</summary>
    public DeviceSpan<float> GradientAttention { get; }
    public DeviceSpan<float> GradientGate { get; }
    public DeviceSpan<float> GradientUp { get; }
    /// <summary>[n, ff] bf16: d(up) in bf16 precision, up_proj's input-gradient operand (else empty).</summary>
    public DeviceSpan<ushort> GradientUpBf16 { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    public DeviceSpan<float> QueryFull { get; }
    public DeviceSpan<float> KeyFull { get; }
    public DeviceSpan<float> ValueFull { get; }
    /// <summary>fp32 precision: the rotated narrow k and v; then (both precisions, unless <see cref="GroupsInPlace"/>) the k/v gradients summed over the groups.</summary>
    public DeviceSpan<float> KeyNarrowFull { get; }
    public DeviceSpan<float> ValueNarrowFull { get; }
    public DeviceSpan<float> AttentionFull { get; }
    /// <summary>bf16 precision: attention's q, k, v and output in the full layout (the fp32 twins above empty; else these are).</summary>
    public DeviceSpan<ushort> QueryFullBf16 { get; }
    public DeviceSpan<ushort> KeyFullBf16 { get; }
    public DeviceSpan<ushort> ValueFullBf16 { get; }
    public DeviceSpan<ushort> KeyNarrowFullBf16 { get; }
    public DeviceSpan<ushort> ValueNarrowFullBf16 { get; }
    public DeviceSpan<ushort> AttentionFullBf16 { get; }
    public DeviceSpan<float> GradientAttentionFull { get; }
    public DeviceSpan<float> GradientQueryFull { get; }
    public DeviceSpan<float> GradientKeyFull { get; }
    public DeviceSpan<float> GradientValueFull { get; }
    /// <summary>[rows·sequence, d]: the full-layout embeddings at the start of a step, every target's head gradient at its end.</summary>
    public DeviceSpan<float> FullScratch { get; }
    /// <summary>Zeros [Sequence, d]: the embedding kernel's position table (Llama has none; RoPE rotates q and k instead).</summary>
    public DeviceSpan<float> ZeroPositions { get; }

    public override DeviceSpan<float> BlockInput(int layer) => layer < Layers.Length ? Layers[layer].Input : Final;
    public override DeviceSpan<float> FullEmbeddings => FullScratch;
    public override DeviceSpan<float> TargetGradients => FullScratch;
    public override bool Fits(TokenBatch batch, PromptLayout layout) => base.Fits(batch, layout) && Sequence >= batch.SequenceLength;
}

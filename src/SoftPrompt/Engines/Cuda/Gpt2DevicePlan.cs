using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// GPT-2's device memory for one (rows, positions) capacity, one arena reused every step: per block what its reverse pass
/// reads (shared rows), and scratch, including attention's full [rows·sequence, ·] layout gathered from the shared rows.
/// </summary>
internal sealed class Gpt2DevicePlan : DecoderDevicePlan
{
    /// <param name="bf16">The weights are bf16: hold a bf16 copy of the largest GEMM activation operand.</param>
    /// <param name="recomputes">Keep each layer's input only; its other saved tensors live in one set every layer reuses.</param>
    public static Gpt2DevicePlan Allocate(IComputeDevice device, Gpt2Config config, int rows, int positions, PromptLayout layout, bool bf16 = false, bool recomputes = false)
        => DeviceArena.Allocate(device, "gpt2 plan", carve => new Gpt2DevicePlan(carve, config, rows, positions, layout, bf16, recomputes));

    /// <summary>The plan's layout and size without a device.</summary>
    public static Gpt2DevicePlan Measure(Gpt2Config config, int rows, int positions, PromptLayout layout, bool bf16 = false, bool recomputes = false)
        => DeviceArena.Measure("gpt2 plan", carve => new Gpt2DevicePlan(carve, config, rows, positions, layout, bf16, recomputes));

    /// <summary>A plan for <paramref name="batch"/> and its capacity (its RowCapacity rows of its longest prompt and TokenCapacity tokens), grown to cover <paramref name="current"/> so alternating shapes settle on one plan.</summary>
    public static (int Rows, int Positions) Capacity(TokenBatch batch, Gpt2DevicePlan? current)
    {
        int rows = Math.Max(batch.Rows, batch.RowCapacity);
        int positions = Math.Max(batch.Rows * batch.SequenceLength, batch.RowCapacity * (batch.LongestPrompt + batch.TokenCapacity));
        return (Math.Max(rows, current?.Rows ?? 0), Math.Max(positions, current?.Positions ?? 0));
    }

    private Gpt2DevicePlan(ArenaCarver carve, Gpt2Config config, int rows, int positions, PromptLayout layout, bool bf16, bool recomputes)
        : base(carve, rows, positions, config.Embedding, config.VocabSize, layout, bf16, recomputes)
    {
        long n = positions, c = config.Embedding, inner = config.Inner, heads = config.Heads;
        HiddenStride = PreActivationStride(config);
        DeviceSpan<float> F(string name, long count) => carve.Take<float>(name, count);

        carve.Kind = DeviceMemoryKind.Activations;
        Layer Saved(int? layer)
        {
            string at = RecomputedLayers.Prefix("h", layer);
            return new(Input: default, Mean1: F(at + "ln_1.mean", n), Rstd1: F(at + "ln_1.rstd", n), Qkv: F(at + "qkv", bf16 ? 0 : n * 3 * c),
                QkvBf16: carve.Take<ushort>(at + "qkv_bf16", bf16 ? n * 3 * c : 0), Attention: F(at + "attention", bf16 ? 0 : n * c),
                AttentionBf16: carve.Take<ushort>(at + "attention_bf16", bf16 ? n * c : 0), LogSumExp: F(at + "logsumexp", n * heads), Middle: F(at + "middle", n * c),
                Mean2: F(at + "ln_2.mean", n), Rstd2: F(at + "ln_2.rstd", n), Hidden: F(at + "mlp.hidden", bf16 ? 0 : n * HiddenStride),
                HiddenBf16: carve.Take<ushort>(at + "mlp.hidden_bf16", bf16 ? n * HiddenStride : 0));
        }
        Layers = RecomputedLayers.Carve(config.Layers, recomputes, l => F($"h.{l}.input", n * c), Saved, (saved, input) => saved with { Input = input });
        FinalMean = F("ln_f.mean", n); FinalRstd = F("ln_f.rstd", n);

        carve.Kind = DeviceMemoryKind.Workspace;
        // The [n, inner] MLP activation: c_fc's GEMM writes GELU's output there forward (c_proj's operand), and the reverse pass's
        // GEMM through c_proj writes d(pre-activation) there (c_fc's input-gradient operand); bf16 in bf16 precision.
        Projection = F("projection", (n + 1) * c); Wide = F("wide", bf16 ? 0 : n * inner); WideBf16 = carve.Take<ushort>("wide_bf16", bf16 ? n * inner : 0);
        GradientQkv = F("gradient_qkv", bf16 ? 0 : n * 3 * c); AttentionScratch = F("attention_scratch", n * heads);
        // Attention's full layout holds q|k|v and its output in the storage type of the precision (bf16: as the GEMMs write them).
        QkvFull = F("qkv_full", bf16 ? 0 : n * 3 * c); QkvFullBf16 = carve.Take<ushort>("qkv_full_bf16", bf16 ? n * 3 * c : 0);
        GradientQkvFull = F("gradient_qkv_full", n * 3 * c);
        AttentionFull = F("attention_full", bf16 ? 0 : n * c); AttentionFullBf16 = carve.Take<ushort>("attention_full_bf16", bf16 ? n * c : 0);
        GradientAttentionFull = F("gradient_attention_full", n * c);
        // The bf16 LayerNorm outputs and the bf16 copies of fp32 GEMM operands (at most q|k|v's gradient, [n, 3c]); the MLP's
        // wide operands have wide_bf16, since a GEMM may not write where its operand is.
        Bf16Operands = carve.Take<ushort>("bf16_operands", bf16 ? n * 3 * c : 0);
    }

    /// <summary>
    /// Shared rows: the block's input, ln_1's statistics, q|k|v, attention output before c_proj, logsumexp, the residual after
    /// attention, ln_2's statistics, the MLP's pre-activation (c_fc's output with its bias, rows <see cref="HiddenStride"/> apart). q|k|v, the attention output and
    /// the pre-activation are fp32 in fp32 precision (<see cref="Qkv"/>, <see cref="Attention"/>, <see cref="Hidden"/>) and
    /// bf16 in bf16 precision (<see cref="QkvBf16"/>, <see cref="AttentionBf16"/>, <see cref="HiddenBf16"/>), the others empty.
    /// </summary>
    public readonly record struct Layer(DeviceSpan<float> Input, DeviceSpan<float> Mean1, DeviceSpan<float> Rstd1, DeviceSpan<float> Qkv,
        DeviceSpan<ushort> QkvBf16, DeviceSpan<float> Attention, DeviceSpan<ushort> AttentionBf16, DeviceSpan<float> LogSumExp, DeviceSpan<float> Middle, DeviceSpan<float> Mean2, DeviceSpan<float> Rstd2, DeviceSpan<float> Hidden,
        DeviceSpan<ushort> HiddenBf16);

    public Layer[] Layers { get; }
    /// <summary>The leading dimension of the saved pre-activation: the MLP width rounded up to 8, as cuBLASLt requires of the GELU aux matrix.</summary>
    public int HiddenStride { get; }
    public static int PreActivationStride(Gpt2Config config) => (config.Inner + 7) / 8 * 8;
    public DeviceSpan<float> FinalMean { get; }
    public DeviceSpan<float> FinalRstd { get; }
    /// <summary>[n + 1, c]: c_proj's input gradient, with a zero row past the shared rows for repeated prompt positions.</summary>
    public DeviceSpan<float> Projection { get; }
    /// <summary>[n, inner]: GELU's output forward, d(pre-activation) backward (fp32 precision; <see cref="WideBf16"/> in bf16).</summary>
    public DeviceSpan<float> Wide { get; }
    public DeviceSpan<ushort> WideBf16 { get; }
    /// <summary>[n, 3c]: q|k|v's gradient summed over shared rows (fp32 precision; in bf16 it goes straight into <see cref="Bf16Operands"/>).</summary>
    public DeviceSpan<float> GradientQkv { get; }
    public DeviceSpan<float> AttentionScratch { get; }
    /// <summary>Full-layout [rows·sequence, ·] scratch for attention: its qkv and output gathered from the shared rows (fp32, or bf16 in bf16 precision), and their gradients.</summary>
    public DeviceSpan<float> QkvFull { get; }
    public DeviceSpan<ushort> QkvFullBf16 { get; }
    public DeviceSpan<float> GradientQkvFull { get; }
    public DeviceSpan<float> AttentionFull { get; }
    public DeviceSpan<ushort> AttentionFullBf16 { get; }
    public DeviceSpan<float> GradientAttentionFull { get; }
    /// <summary>The bf16 copy of a GEMM's activation operand when the weights are bf16 (else empty).</summary>
    public DeviceSpan<ushort> Bf16Operands { get; }

    public override DeviceSpan<float> BlockInput(int layer) => layer < Layers.Length ? Layers[layer].Input : Final;
    /// <summary>GradientAttentionFull is free outside the reverse pass's attention, and fp32 in both precisions.</summary>
    public override DeviceSpan<float> FullEmbeddings => GradientAttentionFull;
    /// <summary>GradientQkvFull is free until the reverse pass reaches attention.</summary>
    public override DeviceSpan<float> TargetGradients => GradientQkvFull;
}

using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>GPT-2's cached step (<see cref="DeviceDecodingSession"/>): its block on the step's rows only, k and v read from the fused q|k|v projection.</summary>
public sealed partial class CudaGpt2Engine
{
    internal override DecodingShape DecodingShape => new(config.Layers, config.Embedding, config.Heads, config.Heads, config.Embedding / config.Heads,
        QueryWidth: 3 * config.Embedding, KeyValueWidth: 0,
        InnerWidth: bf16 ? Math.Max(config.Inner, 3 * config.Embedding) : config.Inner, InnerBuffers: 1, RotaryTables: false,  // bf16: the inner buffer holds q|k|v first
        Bf16OperandWidth: bf16 ? config.Embedding : 0, Bf16Head: bf16, Bf16Inner: bf16);  // bf16 operands: the norm output, the attention output

    private protected override DeviceSpan<float> DecodingPositionTable => weights.PositionEmbedding;

    private protected override void CachedBlock(DeviceDecodingPlan p, int layer, int rows, int splitSize, int splits)
    {
        var w = weights.Layers[layer];
        var ix = p.Indices(rows);
        int n = rows, c = config.Embedding, inner = config.Inner, heads = config.Heads;
        float eps = (float)config.LayerNormEpsilon;
        var normed = LayerNormForGemm(p.Norm, p.Mean, p.Rstd, p.Hidden, w.Norm1Weight, w.Norm1Bias, n, c, eps);
        if (bf16)
        {
            // q|k|v rounded as the full forward's bf16 c_attn output, then widened (exactly) for the fp32 cache and decode
            // attention; c_proj rounds the attention output to bf16 as its GEMM operand, like the full forward's bf16 output.
            var qkv = p.InnerBf16.Slice(0, (long)n * 3 * c);
            LinearToBf16(qkv, normed, w.QkvWeight, w.QkvBias.Bf16, n, c, 3 * c);
            ConvertFromBf16.Launch(device, p.Query.Slice(0, (long)n * 3 * c), qkv);
        }
        else Linear(p.Query, default, normed, w.QkvWeight, w.QkvBias.Fp32, n, c, 3 * c);
        KeyValueCacheAppend.Launch(device, p.KeyCache[layer], p.ValueCache[layer], p.Query.Slice(c), 3 * c, p.Query.Slice(2 * c), 3 * c, ix.RowKeys, n, c, c);
        DecodeAttention.Launch(device, p.Attention, c, p.Query, 3 * c, p.KeyCache[layer], p.ValueCache[layer], c, ix.RowKeys, p.PartialOut, p.PartialMax, p.PartialSum,
            n, heads, heads, c / heads, splitSize, splits, config.AttentionScale<float>(layer));
        Linear(p.Middle, p.Hidden, p.Attention, w.AttentionProjectionWeight, w.AttentionProjectionBias, n, c, c);
        normed = LayerNormForGemm(p.Norm, p.Mean, p.Rstd, p.Middle, w.Norm2Weight, w.Norm2Bias, n, c, eps);
        // c_fc's GEMM applies its bias and GELU to the fp32 sum, as the full forward does (which also saves the pre-activation).
        long wide = (long)n * inner;
        GemmInput activated;
        if (bf16)
        {
            var activatedBf16 = p.InnerBf16.Slice(0, wide);
            WeightGemm(n, inner, c, normed, w.FcWeight, inner, weightTransposed: false, activatedBf16, inner, GemmEpilogue<ushort>.GeluWithBias(w.FcBias.Bf16));
            activated = GemmInput.OfBf16(activatedBf16);
        }
        else
        {
            var hidden = p.Inner.Slice(0, wide);
            WeightGemm(n, inner, c, normed, w.FcWeight, inner, weightTransposed: false, 0f, default, hidden, inner, GemmEpilogue<float>.GeluWithBias(w.FcBias.Fp32));
            activated = hidden;
        }
        Linear(p.Hidden, p.Middle, activated, w.FcProjectionWeight, w.FcProjectionBias, n, inner, c);
    }

    internal override void CachedFinalNorm(DeviceDecodingPlan p, int rows)
        => LayerNormForward.Launch(device, p.Norm, p.Mean, p.Rstd, p.Hidden, weights.FinalNormWeight, weights.FinalNormBias, rows, config.Embedding, (float)config.LayerNormEpsilon);
}

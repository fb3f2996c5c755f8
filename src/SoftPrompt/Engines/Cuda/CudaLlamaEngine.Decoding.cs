using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// Llama's cached step (<see cref="DeviceDecodingSession"/>): its block on the step's rows only. RoPE rotates q (with
/// 1/√hd folded in, as the full forward) and k at each row's own position, from the tables' rows gathered once per step;
/// the cache keeps each kv head once and decode attention reads it in place for the group's query heads. In bf16 precision
/// q|k|v are rounded as the full forward's (fp32 q, k rotated then rounded in place; v a bf16 GEMM output in the first
/// inner buffer, widened back) for the fp32 cache and decode attention; o_proj rounds the attention output to bf16 as its
/// operand, as the full forward's.
/// </summary>
public sealed partial class CudaLlamaEngine
{
    internal override DecodingShape DecodingShape => new(config.Layers, config.Embedding, config.Heads, config.KeyValueHeads, config.HeadSize,
        QueryWidth: config.AttentionSize, KeyValueWidth: config.KeyValueSize,
        InnerWidth: bf16 ? Math.Max(config.Intermediate, config.KeyValueSize) : config.Intermediate, InnerBuffers: 2, RotaryTables: true,
        Bf16OperandWidth: bf16 ? Math.Max(config.Embedding, Math.Max(config.AttentionSize, config.Intermediate)) : 0, Bf16Head: bf16, Bf16Inner: bf16);

    private protected override DeviceSpan<float> DecodingPositionTable => default;

    private protected override void BeginCachedRows(DeviceDecodingPlan p, int rows)
    {
        var positions = p.Indices(rows).Positions;
        int half = config.HeadSize / 2;
        GatherRows.Launch(device, p.RopeCos, weights.RopeCos, positions, rows, half);
        GatherRows.Launch(device, p.RopeSin, weights.RopeSin, positions, rows, half);
    }

    private protected override void CachedBlock(DeviceDecodingPlan p, int layer, int rows, int splitSize, int splits)
    {
        var w = weights.Layers[layer];
        var ix = p.Indices(rows);
        int n = rows, d = config.Embedding, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize;
        float eps = (float)config.RmsNormEpsilon;
        var normed = RmsNormForGemm(p.Norm, p.Rstd, p.Hidden, w.AttentionNormWeight, n, d, eps);
        // Row i's tables are its position's (batch 1, sequence n: the kernel's row index is the table row).
        Project(p.Query, normed, w.Query, w.Bias.Query, n, d, att);
        Project(p.Key, normed, w.Key, w.Bias.Key, n, d, kv);
        RopeForward.Launch(device, p.Query, p.RopeCos, p.RopeSin, 1, n, heads, hd, attentionScale);
        RopeForward.Launch(device, p.Key, p.RopeCos, p.RopeSin, 1, n, kvHeads, hd, 1f);
        if (bf16)
        {
            // q and k rounded in place after RoPE; v projected to bf16 in the first inner buffer, then widened back.
            RoundToBf16.Launch(device, p.Query.Slice(0, (long)n * att), p.Query.Slice(0, (long)n * att));
            RoundToBf16.Launch(device, p.Key.Slice(0, (long)n * kv), p.Key.Slice(0, (long)n * kv));
            var value = p.InnerBf16.Slice(0, (long)n * kv);
            ProjectToBf16(value, normed, w.Value, w.Bias.Value.Bf16, n, d, kv);
            ConvertFromBf16.Launch(device, p.Value.Slice(0, (long)n * kv), value);
        }
        else Project(p.Value, normed, w.Value, w.Bias.Value.Fp32, n, d, kv);
        KeyValueCacheAppend.Launch(device, p.KeyCache[layer], p.ValueCache[layer], p.Key, kv, p.Value, kv, ix.RowKeys, n, kv, kv);
        DecodeAttention.Launch(device, p.Attention, att, p.Query, att, p.KeyCache[layer], p.ValueCache[layer], kv, ix.RowKeys, p.PartialOut, p.PartialMax, p.PartialSum,
            n, heads, kvHeads, hd, splitSize, splits, scale: 1f);
        ResidualWithBias(p.Middle, p.Hidden, p.Attention, w.Output, w.Bias.Output, n, att, d);
        normed = RmsNormForGemm(p.Norm, p.Rstd, p.Middle, w.MlpNormWeight, n, d, eps);
        long wide = (long)n * ff;
        var gate = p.Inner.Slice(0, bf16 ? 0 : wide);
        var activated = GemmInputBuffer(gate, wide);
        if (bf16)
        {
            var (gateBf16, upBf16) = (p.InnerBf16.Slice(0, wide), p.Inner2Bf16.Slice(0, wide));
            ProjectToBf16(gateBf16, normed, w.Gate, n, d, ff);
            ProjectToBf16(upBf16, normed, w.Up, n, d, ff);
            SwiGluForward.Launch(device, activated.Bf16, gateBf16, upBf16, n * ff);
        }
        else
        {
            Project(gate, normed, w.Gate, n, d, ff);
            Project(p.Inner2, normed, w.Up, n, d, ff);
            SwiGluForward.Launch(device, gate, gate, p.Inner2, n * ff);
        }
        Residual(p.Hidden, p.Middle, activated, w.Down, n, ff, d);
    }

    internal override void CachedFinalNorm(DeviceDecodingPlan p, int rows)
        => RmsNormForward.Launch(device, p.Norm, p.Rstd, p.Hidden, weights.FinalNormWeight, rows, config.Embedding, (float)config.RmsNormEpsilon);
}

using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// T5's cached decoding on the device (<see cref="DeviceT5DecodingSession"/>, the twin of <see cref="CpuT5DecodingSession{T}"/>):
/// each input is encoded once by the training path's encoder, every decoder layer's cross-attention keys and values of it
/// are projected once into the session's caches, and the decoder runs only its new positions against its cached
/// self-attention keys and values, T5's relative bias looked up by distance back (decode attention's distance bias).
/// </summary>
public sealed partial class CudaT5Engine
{
    /// <summary>A KV-cached decoding session over the prompts loaded now.</summary>
    public IDecodingSession OpenDecoding(int slots, int tokensPerSlot) => new DeviceT5DecodingSession(this, slots, tokensPerSlot);

    internal T5Config Config => config;

    /// <summary>
    /// The widths of T5's cached decoder step: the query buffer holds self-attention's q|k|v (one GEMM through the stacked
    /// weights; k and v read from it by stride) and then cross-attention's q; the bf16 operands are the engine plan's.
    /// </summary>
    internal DecodingShape DecodingShape => new(config.DecoderLayers, config.Embedding, config.Heads, config.Heads, config.HeadSize,
        QueryWidth: 3 * config.AttentionSize, KeyValueWidth: 0, config.FeedForwardSize, InnerBuffers: config.IsGated ? 2 : 1,
        RotaryTables: false, Bf16OperandWidth: 0, Bf16Head: bf16, Bf16Inner: bf16);

    /// <summary>
    /// Once per session: grows the engine's plan to encode <paramref name="slots"/> inputs of up to
    /// <paramref name="encoderCapacity"/> positions (so no encoding allocates; its bf16 operand buffer then also covers
    /// every decoder step of the session) and fills the plan's self-attention bias by distance back, [heads, distances].
    /// </summary>
    internal void PrepareDecoding(DeviceDecodingPlan p, int slots, int encoderCapacity)
    {
        Plan(slots, encoderCapacity, 1);
        int heads = config.Heads, distances = p.BiasDistances;
        var relative = new float[config.RelativeBuckets * heads];
        device.CopyToHost(weights.DecoderRelativeBias.Slice(0, relative.Length), relative);
        var bias = new float[heads * distances];
        for (int distance = 0; distance < distances; distance++)
        {
            int bucket = T5RelativeBuckets.Bucket(-distance, bidirectional: false, config.RelativeBuckets, config.RelativeMaxDistance);
            for (int h = 0; h < heads; h++) bias[h * distances + distance] = relative[bucket * heads + h];
        }
        device.CopyToDevice<float>(bias, p.DistanceBias);
    }

    /// <summary>
    /// Encodes the batch's rows (their targets are ignored) and writes every decoder layer's cross-attention keys and values
    /// of row r at cache rows <paramref name="slotOfRow"/>[r]·<paramref name="encoderCapacity"/> onward;
    /// <paramref name="encoderLengths"/>[slot] receives the row's encoder length. <paramref name="hostCacheRows"/> is the
    /// host side of <see cref="DeviceDecodingPlan.EncodedToCacheRows"/>.
    /// </summary>
    internal void EncodeForDecoding(TokenBatch batch, ReadOnlySpan<int> slotOfRow, DeviceDecodingPlan decoding, int encoderCapacity, Span<int> encoderLengths, int[] hostCacheRows)
    {
        var (encoder, decoder) = BatchChecks.EncoderDecoder(batch, state.Layout, config.VocabSize, config.MaxPositions);
        if (encoder > encoderCapacity) throw new ArgumentException($"An encoder input of {encoder} positions does not fit the session's {encoderCapacity}.");
        var p = Encode(batch, encoder, decoder);
        // Every encoded position (padding too: never read, as each row's key length stops at its own) to its slot's rows.
        int ne = rows * encoderLength, att = config.AttentionSize, d = config.Embedding;
        for (int r = 0; r < rows; r++)
        {
            encoderLengths[slotOfRow[r]] = p.HostEncoderLengths[r];
            for (int i = 0; i < encoderLength; i++) hostCacheRows[r * encoderLength + i] = slotOfRow[r] * encoderCapacity + i;
        }
        var cacheRows = decoding.EncodedToCacheRows.Slice(0, ne);
        device.CopyToDevice<int>(hostCacheRows.AsSpan(0, ne), cacheRows);
        var encoderOutput = EncoderOutputOperand(p);
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var w = weights.DecoderLayers[l].CrossAttention;
            ProjectForDecodeAttention(p.GradientProjections, encoderOutput, w.Key, ne, att);
            ScatterRows.Launch(device, decoding.CrossKeyCache[l], p.GradientProjections, cacheRows, ne, att);
            ProjectForDecodeAttention(p.GradientProjections, encoderOutput, w.Value, ne, att);
            ScatterRows.Launch(device, decoding.CrossValueCache[l], p.GradientProjections, cacheRows, ne, att);
        }
    }

    /// <summary>
    /// A step's rows (indices uploaded) through every decoder layer: each row's self-attention key and value appended to
    /// its slot's cache, attention over its own earlier positions (bias by distance) and over its slot's encoded input;
    /// then the final norm into <see cref="DeviceDecodingPlan.Norm"/>, which the head reads.
    /// </summary>
    internal void DecodeCachedRows(DeviceDecodingPlan p, int n, int longestSelf, int longestCross)
    {
        var ix = p.Indices(n);
        int d = config.Embedding, att = config.AttentionSize, ff = config.FeedForwardSize, heads = config.Heads, hs = config.HeadSize;
        float eps = (float)config.LayerNormEpsilon;
        DecodeEmbedding.Launch(device, p.Hidden, ix.Tokens, ix.PromptRows, ix.Positions, default, weights.TokenEmbedding, default, n, d);
        var (selfSize, selfSplits) = p.AttentionSplits(n, longestSelf);
        var (crossSize, crossSplits) = p.AttentionSplits(n, longestCross);
        // The residual stream alternates between two buffers, one sublayer at a time.
        DeviceSpan<float> x = p.Hidden, y = p.Middle;
        long wide = (long)n * ff;
        var inner = p.Inner.Slice(0, bf16 ? 0 : wide);
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var w = weights.DecoderLayers[l];
            RmsNormForward.Launch(device, p.Norm, p.Rstd, x, w.SelfAttentionNormWeight, n, d, eps);
            ProjectForDecodeAttention(p.Query, p.Norm, w.SelfAttention.QueryKeyValue, n, 3 * att);
            KeyValueCacheAppend.Launch(device, p.KeyCache[l], p.ValueCache[l], p.Query.Slice(att), 3 * att, p.Query.Slice(2 * att), 3 * att, ix.RowKeys, n, att, att);
            DecodeAttention.Launch(device, p.Attention, att, p.Query, 3 * att, p.KeyCache[l], p.ValueCache[l], att, ix.RowKeys, p.PartialOut, p.PartialMax, p.PartialSum,
                n, heads, heads, hs, selfSize, selfSplits, scale: 1f, p.DistanceBias, p.BiasDistances);
            Residual(y, x, p.Attention, w.SelfAttention.Output, n, att, d);

            RmsNormForward.Launch(device, p.Norm, p.Rstd, y, w.CrossAttentionNormWeight, n, d, eps);
            ProjectForDecodeAttention(p.Query, p.Norm, w.CrossAttention.Query, n, att);
            DecodeAttention.Launch(device, p.Attention, att, p.Query, att, p.CrossKeyCache[l], p.CrossValueCache[l], att, ix.CrossRowKeys, p.PartialOut, p.PartialMax,
                p.PartialSum, n, heads, heads, hs, crossSize, crossSplits, scale: 1f);
            Residual(x, y, p.Attention, w.CrossAttention.Output, n, att, d);

            RmsNormForward.Launch(device, p.Norm, p.Rstd, x, w.FeedForwardNormWeight, n, d, eps);
            Residual(y, x, CachedFeedForwardActivation(p, w.FeedForward, inner, n), w.FeedForward.Output, n, ff, d);
            (x, y) = (y, x);
        }
        RmsNormForward.Launch(device, p.Norm, p.Rstd, x, weights.DecoderFinalNormWeight, n, d, eps);
    }

    /// <summary>
    /// y [n, width] = x [n, d] · Wᵀ for decode attention (fp32, its caches too): in bf16 precision rounded to the bf16 values
    /// the full forward's bf16 q, k and v GEMM outputs hold, so the cached step's logits stay that pass's.
    /// </summary>
    private void ProjectForDecodeAttention(DeviceSpan<float> y, GemmInput x, DeviceMatrix weight, int n, int width)
    {
        long count = (long)n * width;
        Project(y, x, weight, n, config.Embedding, width);
        if (bf16) RoundToBf16.Launch(device, y.Slice(0, count), y.Slice(0, count));
    }

    /// <summary>
    /// The step's feed-forward activation of p.Norm [n, d], as wo's operand: in bf16 precision the pre-activations are bf16
    /// GEMM outputs and the activation is written in bf16 (as the full forward does), else fp32 in place in <paramref name="inner"/>.
    /// </summary>
    private GemmInput CachedFeedForwardActivation(DeviceDecodingPlan p, T5DeviceWeights.FeedForward w, DeviceSpan<float> inner, int n)
    {
        int d = config.Embedding, ff = config.FeedForwardSize;
        long wide = (long)n * ff;
        if (!bf16)
        {
            Project(inner, p.Norm, w.Input, n, d, ff);
            if (config.IsGated)
            {
                Project(p.Inner2, p.Norm, w.Linear, n, d, ff);
                GatedGeluForward.Launch(device, inner, inner, p.Inner2.Slice(0, wide));
            }
            else ReluForward.Launch(device, inner, inner);
            return inner;
        }
        var hidden = p.InnerBf16.Slice(0, wide);
        ProjectToBf16(hidden, p.Norm, w.Input, n, d, ff);
        if (config.IsGated) ProjectToBf16(p.Inner2Bf16.Slice(0, wide), p.Norm, w.Linear, n, d, ff);
        var activated = GemmInputBuffer(inner, wide);
        if (config.IsGated) GatedGeluForward.Launch(device, activated.Bf16, hidden, p.Inner2Bf16.Slice(0, wide));
        else ReluForward.Launch(device, activated.Bf16, hidden);
        return activated;
    }

    /// <summary>After <see cref="DecodeCachedRows"/> and the head's targets: the logits (or, with <paramref name="tokens"/>, the argmax) of the targeted rows.</summary>
    internal void CachedNextTokens(DeviceDecodingPlan p, int rows, Span<float> logits, Span<int> tokens)
        => p.Head.NextTokens(p.Norm, weights.Head, HeadScale, rows, logits, tokens);
}

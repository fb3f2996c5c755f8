using System.Numerics;

namespace SoftPrompt.Models.T5;

/// <summary>
/// Frozen T5 parameters in host memory, row-major, as Hugging Face stores them: nn.Linear weights are
/// [out, in], so a projection is y = x·Wᵀ; there are no biases. a = Heads·d_kv, ff = d_ff.
/// </summary>
public sealed class T5Weights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public required T5Config Config { get; init; }
    /// <summary>shared.weight [V, d]: the token embedding of both stacks, and the LM head when tied.</summary>
    public required T[] TokenEmbedding { get; init; }
    /// <summary>lm_head.weight [V, d] when tie_word_embeddings is false; null when tied.</summary>
    public T[]? LanguageModelHead { get; init; }
    /// <summary>encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight [num_buckets, H], shared by every encoder layer.</summary>
    public required T[] EncoderRelativeBias { get; init; }
    /// <summary>decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight [num_buckets, H], shared by every decoder layer.</summary>
    public required T[] DecoderRelativeBias { get; init; }
    public required T5EncoderLayerWeights<T>[] EncoderLayers { get; init; }
    public required T5DecoderLayerWeights<T>[] DecoderLayers { get; init; }
    /// <summary>encoder.final_layer_norm.weight [d]</summary>
    public required T[] EncoderFinalNormWeight { get; init; }
    /// <summary>decoder.final_layer_norm.weight [d]</summary>
    public required T[] DecoderFinalNormWeight { get; init; }

    /// <summary>The matrix the logits are computed with: lm_head [V, d], or shared when tied.</summary>
    public T[] HeadWeight => LanguageModelHead ?? TokenEmbedding;
}

/// <summary>encoder.block.{i}: layer.0 self-attention, layer.1 feed-forward.</summary>
public sealed class T5EncoderLayerWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>layer.0.layer_norm.weight [d]</summary>
    public required T[] SelfAttentionNormWeight { get; init; }
    public required T5AttentionWeights<T> SelfAttention { get; init; }
    /// <summary>layer.1.layer_norm.weight [d]</summary>
    public required T[] FeedForwardNormWeight { get; init; }
    public required T5FeedForwardWeights<T> FeedForward { get; init; }
}

/// <summary>decoder.block.{i}: layer.0 causal self-attention, layer.1 cross-attention (EncDecAttention), layer.2 feed-forward.</summary>
public sealed class T5DecoderLayerWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>layer.0.layer_norm.weight [d]</summary>
    public required T[] SelfAttentionNormWeight { get; init; }
    public required T5AttentionWeights<T> SelfAttention { get; init; }
    /// <summary>layer.1.layer_norm.weight [d]</summary>
    public required T[] CrossAttentionNormWeight { get; init; }
    public required T5AttentionWeights<T> CrossAttention { get; init; }
    /// <summary>layer.2.layer_norm.weight [d]</summary>
    public required T[] FeedForwardNormWeight { get; init; }
    public required T5FeedForwardWeights<T> FeedForward { get; init; }
}

/// <summary>SelfAttention / EncDecAttention: q, k, v [a, d] and o [d, a].</summary>
public sealed class T5AttentionWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public required T[] Query { get; init; }
    public required T[] Key { get; init; }
    public required T[] Value { get; init; }
    public required T[] Output { get; init; }
}

/// <summary>DenseReluDense: wi [ff, d] (v1.0) or wi_0 [ff, d] + wi_1 [ff, d] (v1.1), and wo [d, ff].</summary>
public sealed class T5FeedForwardWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>The activated branch: wi (relu) or wi_0 (gelu_new).</summary>
    public required T[] Input { get; init; }
    /// <summary>wi_1, the linear branch the activation gates (v1.1); null for v1.0.</summary>
    public T[]? Linear { get; init; }
    /// <summary>wo [d, ff]</summary>
    public required T[] Output { get; init; }
}

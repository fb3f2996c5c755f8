using System.Numerics;

namespace SoftPrompt.Models.Gpt2;

/// <summary>
/// Frozen GPT-2 parameters in host memory, row-major, in Hugging Face's layout. Conv1D weights are
/// stored [in, out] so a projection is y = x·W + b. The LM head is <see cref="TokenEmbedding"/> unless the config unties it.
/// </summary>
public sealed class Gpt2Weights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public required Gpt2Config Config { get; init; }
    /// <summary>wte [VocabSize, d]</summary>
    public required T[] TokenEmbedding { get; init; }
    /// <summary>wpe [MaxPositions, d]</summary>
    public required T[] PositionEmbedding { get; init; }
    public required Gpt2LayerWeights<T>[] Layers { get; init; }
    /// <summary>ln_f.weight [d]</summary>
    public required T[] FinalNormWeight { get; init; }
    /// <summary>ln_f.bias [d]</summary>
    public required T[] FinalNormBias { get; init; }
    /// <summary>lm_head.weight [VocabSize, d] when tie_word_embeddings is false; null when the head is wte.</summary>
    public T[]? LanguageModelHead { get; init; }
    /// <summary>The matrix the logits come from: lm_head.weight, or wte when tied.</summary>
    public T[] Head => LanguageModelHead ?? TokenEmbedding;
}

/// <summary>One transformer block (h.{i}).</summary>
public sealed class Gpt2LayerWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>ln_1.weight / ln_1.bias [d]</summary>
    public required T[] Norm1Weight { get; init; }
    public required T[] Norm1Bias { get; init; }
    /// <summary>attn.c_attn.weight [d, 3d] (q | k | v along the output), bias [3d]</summary>
    public required T[] QkvWeight { get; init; }
    public required T[] QkvBias { get; init; }
    /// <summary>attn.c_proj.weight [d, d], bias [d]</summary>
    public required T[] AttentionProjectionWeight { get; init; }
    public required T[] AttentionProjectionBias { get; init; }
    /// <summary>ln_2.weight / ln_2.bias [d]</summary>
    public required T[] Norm2Weight { get; init; }
    public required T[] Norm2Bias { get; init; }
    /// <summary>mlp.c_fc.weight [d, inner], bias [inner]</summary>
    public required T[] FcWeight { get; init; }
    public required T[] FcBias { get; init; }
    /// <summary>mlp.c_proj.weight [inner, d], bias [d]</summary>
    public required T[] FcProjectionWeight { get; init; }
    public required T[] FcProjectionBias { get; init; }
}

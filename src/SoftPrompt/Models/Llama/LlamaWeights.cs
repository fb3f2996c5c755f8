using System.Numerics;

namespace SoftPrompt.Models.Llama;

/// <summary>
/// Frozen Llama-style parameters in host memory, row-major, as Hugging Face stores them: nn.Linear weights are
/// [out, in], so a projection is y = x·Wᵀ (+ b where the config has attention biases). a = Heads·head_dim, kv = KeyValueHeads·head_dim.
/// </summary>
public sealed class LlamaWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public required LlamaConfig Config { get; init; }
    /// <summary>model.embed_tokens.weight [V, d]: where prompts live, and the LM head when tied.</summary>
    public required T[] TokenEmbedding { get; init; }
    /// <summary>lm_head.weight [V, d] when tie_word_embeddings is false; null when tied.</summary>
    public T[]? LanguageModelHead { get; init; }
    public required LlamaLayerWeights<T>[] Layers { get; init; }
    /// <summary>model.norm.weight [d]</summary>
    public required T[] FinalNormWeight { get; init; }

    /// <summary>The matrix the logits are computed with: lm_head [V, d], or embed_tokens when tied.</summary>
    public T[] HeadWeight => LanguageModelHead ?? TokenEmbedding;
}

/// <summary>model.layers.{i}: input_layernorm, self_attn (q, k, v, o), post_attention_layernorm, mlp (gate, up, down).</summary>
public sealed class LlamaLayerWeights<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>input_layernorm.weight [d]</summary>
    public required T[] AttentionNormWeight { get; init; }
    /// <summary>self_attn.q_proj.weight [a, d]</summary>
    public required T[] Query { get; init; }
    /// <summary>self_attn.k_proj.weight [kv, d]</summary>
    public required T[] Key { get; init; }
    /// <summary>self_attn.v_proj.weight [kv, d]</summary>
    public required T[] Value { get; init; }
    /// <summary>self_attn.o_proj.weight [d, a]</summary>
    public required T[] Output { get; init; }
    /// <summary>self_attn.q_proj.bias [a], k_proj.bias and v_proj.bias [kv] (<see cref="LlamaConfig.QueryKeyValueBiases"/>); empty when the model has none.</summary>
    public T[] QueryBias { get; init; } = [];
    public T[] KeyBias { get; init; } = [];
    public T[] ValueBias { get; init; } = [];
    /// <summary>self_attn.o_proj.bias [d] (<see cref="LlamaConfig.OutputBias"/>); empty when the model has none.</summary>
    public T[] OutputBias { get; init; } = [];
    /// <summary>post_attention_layernorm.weight [d]</summary>
    public required T[] MlpNormWeight { get; init; }
    /// <summary>mlp.gate_proj.weight [ff, d]: the SiLU branch.</summary>
    public required T[] Gate { get; init; }
    /// <summary>mlp.up_proj.weight [ff, d]: the linear branch.</summary>
    public required T[] Up { get; init; }
    /// <summary>mlp.down_proj.weight [d, ff]</summary>
    public required T[] Down { get; init; }
}

using System.Numerics;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models.Llama;

/// <summary>Loads a Hugging Face Llama-style directory (config.json + safetensors) into <see cref="LlamaWeights{T}"/>.</summary>
public static class LlamaCheckpoint
{
    public const string Prefix = "model.";
    public const string LanguageModelHead = "lm_head.weight";

    /// <summary>
    /// Reads every tensor once, converted to <typeparamref name="T"/>, after checking its shape against config.json.
    /// Names carry the <c>model.</c> prefix (LlamaForCausalLM) or not (LlamaModel). tie_word_embeddings decides the head
    /// as in Hugging Face: tied → embed_tokens (a stored lm_head.weight is a copy and is ignored), untied → lm_head.weight
    /// must be present. The rotary inv_freq buffers older exports carry are ignored (the frequencies come from config.json).
    /// The CPU engines' load: device engines stream the same tensors into device memory instead (<see cref="Open"/>).
    /// </summary>
    public static LlamaWeights<T> Load<T>(string modelDir) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (config, checkpoint) = Open(modelDir);
        using var _ = checkpoint;
        long d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        T[] Tensor(string name, params ReadOnlySpan<long> shape) => checkpoint.Read<T>(name, shape);
        T[] Bias(string name, bool declared, long size) => declared ? Tensor(name, size) : [];
        var layers = new LlamaLayerWeights<T>[config.Layers];
        for (int i = 0; i < layers.Length; i++)
        {
            string l = $"layers.{i}.";
            bool qkv = config.QueryKeyValueBiases;
            layers[i] = new LlamaLayerWeights<T>
            {
                QueryBias = Bias(l + "self_attn.q_proj.bias", qkv, a),
                KeyBias = Bias(l + "self_attn.k_proj.bias", qkv, kv),
                ValueBias = Bias(l + "self_attn.v_proj.bias", qkv, kv),
                OutputBias = Bias(l + "self_attn.o_proj.bias", config.OutputBias, d),
                AttentionNormWeight = Tensor(l + "input_layernorm.weight", d),
                Query = Tensor(l + "self_attn.q_proj.weight", a, d),
                Key = Tensor(l + "self_attn.k_proj.weight", kv, d),
                Value = Tensor(l + "self_attn.v_proj.weight", kv, d),
                Output = Tensor(l + "self_attn.o_proj.weight", d, a),
                MlpNormWeight = Tensor(l + "post_attention_layernorm.weight", d),
                Gate = Tensor(l + "mlp.gate_proj.weight", ff, d),
                Up = Tensor(l + "mlp.up_proj.weight", ff, d),
                Down = Tensor(l + "mlp.down_proj.weight", d, ff),
            };
        }
        return new LlamaWeights<T>
        {
            Config = config,
            TokenEmbedding = Tensor("embed_tokens.weight", config.VocabSize, d),
            LanguageModelHead = config.TiedEmbeddings ? null : Tensor(LanguageModelHead, config.VocabSize, d),
            Layers = layers,
            FinalNormWeight = Tensor("norm.weight", d),
        };
    }

    /// <summary>
    /// config.json and the checkpoint, checked as far as can be without reading a tensor (blocks beyond num_hidden_layers,
    /// biases the config does not declare, a missing untied head); tensors are then asked for by their names without the
    /// <c>model.</c> prefix.
    /// </summary>
    internal static (LlamaConfig Config, CheckedCheckpoint Checkpoint) Open(string modelDir)
    {
        var config = LlamaConfig.Load(Path.Combine(modelDir, "config.json"));
        var checkpoint = CheckpointDirectory.Open(modelDir);
        try
        {
            string prefix = PrefixOf(checkpoint, modelDir);
            if (checkpoint.Contains($"{prefix}layers.{config.Layers}.input_layernorm.weight"))
                throw new CheckpointException(
                    $"{modelDir}: the checkpoint has a block layers.{config.Layers} but config.json says num_hidden_layers={config.Layers}; use the config.json that came with these weights.");
            // A bias the config does not declare would be dropped silently (wrong logits), so it is refused instead.
            for (int i = 0; i < config.Layers; i++)
            {
                foreach (var (projection, declared) in new[] { ("q", config.QueryKeyValueBiases), ("k", config.QueryKeyValueBiases), ("v", config.QueryKeyValueBiases), ("o", config.OutputBias) })
                {
                    string name = $"{prefix}layers.{i}.self_attn.{projection}_proj.bias";
                    if (!declared && checkpoint.Contains(name))
                        throw new CheckpointException(
                            $"{modelDir}: the checkpoint has '{name}' but config.json declares no such bias (model_type 'qwen2' has q/k/v biases, attention_bias: true q/k/v/o biases); use the config.json that came with these weights.");
                }
            }
            if (!config.TiedEmbeddings && !checkpoint.Contains(LanguageModelHead))
                throw new CheckpointException(
                    $"{modelDir}: config.json says tie_word_embeddings=false but the checkpoint has no '{LanguageModelHead}'; download the complete checkpoint (or set tie_word_embeddings if the head is embed_tokens).");
            return (config, Checked(checkpoint, prefix, config));
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>config.json and embed_tokens [V, d] only (where prompts live), without reading the blocks.</summary>
    public static (LlamaConfig Config, T[] TokenEmbedding) LoadTokenEmbedding<T>(string modelDir) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var config = LlamaConfig.Load(Path.Combine(modelDir, "config.json"));
        using var checkpoint = CheckpointDirectory.Open(modelDir);
        return (config, Checked(checkpoint, PrefixOf(checkpoint, modelDir), config).Read<T>("embed_tokens.weight", config.VocabSize, config.Embedding));
    }

    /// <summary><c>lm_head.weight</c> is never prefixed; every other name takes the checkpoint's <paramref name="prefix"/>.</summary>
    private static CheckedCheckpoint Checked(CheckpointDirectory checkpoint, string prefix, LlamaConfig config) =>
        new(checkpoint, name => name == LanguageModelHead ? name : prefix + name, (c, name, shape) => Check(c, name, shape, config));

    private static string PrefixOf(CheckpointDirectory checkpoint, string modelDir) =>
        checkpoint.Contains(Prefix + "embed_tokens.weight") ? Prefix
        : checkpoint.Contains("embed_tokens.weight") ? ""
        : throw new CheckpointException(
            $"{modelDir}: no '{Prefix}embed_tokens.weight' (or 'embed_tokens.weight'), so this is not a Llama-style checkpoint ({NearestNames.Describe(Prefix + "embed_tokens.weight", checkpoint.TensorNames)}).");

    private static TensorInfo Check(CheckpointDirectory checkpoint, string name, ReadOnlySpan<long> shape, LlamaConfig config)
    {
        if (!checkpoint.TryGetInfo(name, out var info))
            throw new CheckpointException($"{checkpoint.DirectoryPath}: no tensor '{name}' ({NearestNames.Describe(name, checkpoint.TensorNames)}); the checkpoint is incomplete or not a Llama-style model.");
        if (!info.HasShape(shape))
            throw new CheckpointException(
                $"{info.FilePath}: tensor '{name}' has shape {info.ShapeText} but config.json (hidden_size={config.Embedding}, num_attention_heads={config.Heads}, "
                + $"num_key_value_heads={config.KeyValueHeads}, head_dim={config.HeadSize}, intermediate_size={config.Intermediate}, vocab_size={config.VocabSize}) "
                + $"expects {TensorInfo.FormatShape(shape)}; use the config.json that came with these weights.");
        if (!info.DType.IsConvertibleFloat)
            throw new CheckpointException($"{info.FilePath}: tensor '{name}' is stored as {info.DType}; Llama weights must be F32, F16, BF16 or F64.");
        return info;
    }
}

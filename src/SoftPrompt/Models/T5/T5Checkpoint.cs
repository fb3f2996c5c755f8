using System.Numerics;
using SoftPrompt.Checkpoints;
using static SoftPrompt.Models.T5.T5TensorNames;

namespace SoftPrompt.Models.T5;

/// <summary>Loads a Hugging Face T5 directory (config.json + safetensors) into <see cref="T5Weights{T}"/>.</summary>
public static class T5Checkpoint
{
    /// <summary>
    /// Reads every tensor once, converted to <typeparamref name="T"/>, after checking its shape against config.json.
    /// tie_word_embeddings decides the head, as in Hugging Face v4: tied → shared.weight (a stored lm_head.weight is a
    /// copy and is ignored), untied → lm_head.weight must be present; configs with v5's scale_decoder_outputs take
    /// lm_head.weight whenever the checkpoint has it (<see cref="LoadConfig"/>). Copies that converted checkpoints carry
    /// (encoder/decoder.embed_tokens.weight, the unused decoder.block.0.layer.1.EncDecAttention.relative_attention_bias)
    /// are ignored; encoder.embed_tokens.weight stands in for shared.weight when only it was saved.
    /// The CPU engines' load: device engines stream the same tensors into device memory instead (<see cref="Open"/>).
    /// </summary>
    public static T5Weights<T> Load<T>(string modelDir) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (config, checkpoint) = Open(modelDir);
        using var _ = checkpoint;
        long d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, vocab = config.VocabSize;
        T[] Read(string name, params ReadOnlySpan<long> shape) => checkpoint.Read<T>(name, shape);
        T5AttentionWeights<T> ReadAttention(string prefix) => new()
        {
            Query = Read(prefix + "q.weight", a, d),
            Key = Read(prefix + "k.weight", a, d),
            Value = Read(prefix + "v.weight", a, d),
            Output = Read(prefix + "o.weight", d, a),
        };
        T5FeedForwardWeights<T> ReadFeedForward(string prefix) => config.IsGated
            ? new() { Input = Read(prefix + "wi_0.weight", ff, d), Linear = Read(prefix + "wi_1.weight", ff, d), Output = Read(prefix + "wo.weight", d, ff) }
            : new() { Input = Read(prefix + "wi.weight", ff, d), Output = Read(prefix + "wo.weight", d, ff) };

        var encoder = new T5EncoderLayerWeights<T>[config.Layers];
        for (int i = 0; i < encoder.Length; i++)
        {
            string block = Block("encoder", i);
            encoder[i] = new T5EncoderLayerWeights<T>
            {
                SelfAttentionNormWeight = Read(Norm(block, 0), d),
                SelfAttention = ReadAttention(Attention(block, 0, cross: false)),
                FeedForwardNormWeight = Read(Norm(block, 1), d),
                FeedForward = ReadFeedForward(FeedForward(block, 1)),
            };
        }
        var decoder = new T5DecoderLayerWeights<T>[config.DecoderLayers];
        for (int i = 0; i < decoder.Length; i++)
        {
            string block = Block("decoder", i);
            decoder[i] = new T5DecoderLayerWeights<T>
            {
                SelfAttentionNormWeight = Read(Norm(block, 0), d),
                SelfAttention = ReadAttention(Attention(block, 0, cross: false)),
                CrossAttentionNormWeight = Read(Norm(block, 1), d),
                CrossAttention = ReadAttention(Attention(block, 1, cross: true)),
                FeedForwardNormWeight = Read(Norm(block, 2), d),
                FeedForward = ReadFeedForward(FeedForward(block, 2)),
            };
        }
        return new T5Weights<T>
        {
            Config = config,
            TokenEmbedding = Read(Shared, vocab, d),
            LanguageModelHead = config.TiedEmbeddings ? null : Read(LanguageModelHead, vocab, d),
            EncoderRelativeBias = Read(EncoderRelativeBias, config.RelativeBuckets, config.Heads),
            DecoderRelativeBias = Read(DecoderRelativeBias, config.RelativeBuckets, config.Heads),
            EncoderLayers = encoder,
            DecoderLayers = decoder,
            EncoderFinalNormWeight = Read(EncoderFinalNorm, d),
            DecoderFinalNormWeight = Read(DecoderFinalNorm, d),
        };
    }

    /// <summary>
    /// config.json and the checkpoint, checked as far as can be without reading a tensor (blocks beyond num_layers or
    /// num_decoder_layers, a gated feed-forward under a non-gated config, missing relative bias tables or untied head);
    /// tensors are then asked for by their Hugging Face names, <c>shared.weight</c> standing for whichever embedding the checkpoint saved.
    /// </summary>
    internal static (T5Config Config, CheckedCheckpoint Checkpoint) Open(string modelDir)
    {
        var checkpoint = CheckpointDirectory.Open(modelDir);
        try
        {
            var config = LoadConfig(modelDir, checkpoint);
            string embedding = EmbeddingName(checkpoint, modelDir);
            foreach (var (stack, layers, field, feedForwardLayer) in new[] { ("encoder", config.Layers, "num_layers", 1), ("decoder", config.DecoderLayers, "num_decoder_layers", 2) })
            {
                if (checkpoint.Contains(Norm(Block(stack, layers), 0)))
                    throw new CheckpointException(
                        $"{modelDir}: the checkpoint has a block {stack}.block.{layers} but config.json says {field}={layers}; use the config.json that came with these weights.");
                for (int i = 0; i < layers; i++)
                {
                    string feedForward = FeedForward(Block(stack, i), feedForwardLayer);
                    if (!config.IsGated && checkpoint.Contains(feedForward + "wi_0.weight"))
                        throw new CheckpointException(
                            $"{checkpoint.DirectoryPath}: tensor '{feedForward}wi_0.weight' belongs to a gated feed-forward but config.json says feed_forward_proj='{config.FeedForwardProjection}'; use the config.json that came with these weights (T5 v1.1 has \"gated-gelu\").");
                }
            }
            if (!config.TiedEmbeddings && !checkpoint.Contains(LanguageModelHead))
                throw new CheckpointException(
                    $"{modelDir}: config.json says tie_word_embeddings=false but the checkpoint has no '{LanguageModelHead}'; download the complete checkpoint (T5 v1.1 keeps a separate LM head).");
            foreach (string name in new[] { EncoderRelativeBias, DecoderRelativeBias })
            {
                if (!checkpoint.Contains(name))
                    throw new CheckpointException(
                        $"{modelDir}: no '{name}'. T5 keeps its relative position bias table [num_buckets, num_heads] in block 0 of each stack and shares it with every layer; "
                        + $"the checkpoint is incomplete or not a T5 model ({NearestNames.Describe(name, checkpoint.TensorNames)}).");
            }
            return (config, Checked(checkpoint, embedding, config));
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>config.json and the input embedding table [V, d] only (shared.weight, where prompts live), without reading the stacks.</summary>
    public static (T5Config Config, T[] TokenEmbedding) LoadTokenEmbedding<T>(string modelDir) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var checkpoint = CheckpointDirectory.Open(modelDir);
        var config = LoadConfig(modelDir, checkpoint);
        return (config, Checked(checkpoint, EmbeddingName(checkpoint, modelDir), config).Read<T>(Shared, config.VocabSize, config.Embedding));
    }

    /// <summary>config.json with the head decided against the checkpoint's tensors (<see cref="T5Config.WithHeadOf"/>).</summary>
    public static T5Config LoadConfig(string modelDir)
    {
        using var checkpoint = CheckpointDirectory.Open(modelDir);
        return LoadConfig(modelDir, checkpoint);
    }

    private static T5Config LoadConfig(string modelDir, CheckpointDirectory checkpoint) =>
        T5Config.Load(Path.Combine(modelDir, "config.json")).WithHeadOf(checkpoint.Contains(LanguageModelHead));

    private static string EmbeddingName(CheckpointDirectory checkpoint, string modelDir) =>
        checkpoint.Contains(Shared) ? Shared
        : checkpoint.Contains(EncoderEmbedTokens) ? EncoderEmbedTokens
        : throw new CheckpointException(
            $"{modelDir}: no '{Shared}' (or '{EncoderEmbedTokens}'), so this is not a T5 checkpoint ({NearestNames.Describe(Shared, checkpoint.TensorNames)}).");

    /// <summary>Names as Hugging Face's, except <c>shared.weight</c>, which stands for <paramref name="embedding"/> (<see cref="EmbeddingName"/>).</summary>
    private static CheckedCheckpoint Checked(CheckpointDirectory checkpoint, string embedding, T5Config config) =>
        new(checkpoint, name => name == Shared ? embedding : name, (c, name, shape) => Check(c, name, shape, config));

    private static TensorInfo Check(CheckpointDirectory checkpoint, string name, ReadOnlySpan<long> shape, T5Config config)
    {
        var info = checkpoint.GetInfo(name);
        if (!info.HasShape(shape))
            throw new CheckpointException(
                $"{info.FilePath}: tensor '{name}' has shape {info.ShapeText} but config.json (d_model={config.Embedding}, d_kv={config.HeadSize}, num_heads={config.Heads}, "
                + $"d_ff={config.FeedForwardSize}, vocab_size={config.VocabSize}, relative_attention_num_buckets={config.RelativeBuckets}) expects {TensorInfo.FormatShape(shape)}; "
                + "use the config.json that came with these weights.");
        if (!info.DType.IsConvertibleFloat)
            throw new CheckpointException($"{info.FilePath}: tensor '{name}' is stored as {info.DType}; T5 weights must be F32, F16, BF16 or F64.");
        return info;
    }
}

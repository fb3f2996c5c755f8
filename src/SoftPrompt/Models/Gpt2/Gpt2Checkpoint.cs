using System.Numerics;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models.Gpt2;

/// <summary>Loads a Hugging Face GPT-2 directory (config.json + safetensors) into <see cref="Gpt2Weights{T}"/>.</summary>
public static class Gpt2Checkpoint
{
    public const string Prefix = "transformer.";

    /// <summary>
    /// Reads every tensor once, mmap → converted array (F32/F16/BF16/F64 storage → <typeparamref name="T"/>),
    /// after checking its shape against config.json. Names may carry the <c>transformer.</c> prefix
    /// (GPT2LMHeadModel) or not (GPT2Model). <c>lm_head.weight</c> (never prefixed) is the head when
    /// tie_word_embeddings is false and is ignored otherwise (a copy of wte), as are the
    /// attention-mask buffers <c>attn.bias</c>/<c>attn.masked_bias</c> older exports carry.
    /// The CPU engines' load: device engines stream the same tensors into device memory instead (<see cref="Open"/>).
    /// </summary>
    public static Gpt2Weights<T> Load<T>(string modelDir) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var (config, checkpoint) = Open(modelDir);
        using var _ = checkpoint;
        long d = config.Embedding, inner = config.Inner;
        T[] Tensor(string name, params ReadOnlySpan<long> shape) => checkpoint.Read<T>(name, shape);
        var layers = new Gpt2LayerWeights<T>[config.Layers];
        for (int i = 0; i < layers.Length; i++)
        {
            string h = $"h.{i}.";
            layers[i] = new Gpt2LayerWeights<T>
            {
                Norm1Weight = Tensor(h + "ln_1.weight", d),
                Norm1Bias = Tensor(h + "ln_1.bias", d),
                QkvWeight = Tensor(h + "attn.c_attn.weight", d, 3 * d),
                QkvBias = Tensor(h + "attn.c_attn.bias", 3 * d),
                AttentionProjectionWeight = Tensor(h + "attn.c_proj.weight", d, d),
                AttentionProjectionBias = Tensor(h + "attn.c_proj.bias", d),
                Norm2Weight = Tensor(h + "ln_2.weight", d),
                Norm2Bias = Tensor(h + "ln_2.bias", d),
                FcWeight = Tensor(h + "mlp.c_fc.weight", d, inner),
                FcBias = Tensor(h + "mlp.c_fc.bias", inner),
                FcProjectionWeight = Tensor(h + "mlp.c_proj.weight", inner, d),
                FcProjectionBias = Tensor(h + "mlp.c_proj.bias", d),
            };
        }
        return new Gpt2Weights<T>
        {
            Config = config,
            TokenEmbedding = Tensor("wte.weight", config.VocabSize, d),
            PositionEmbedding = Tensor("wpe.weight", config.MaxPositions, d),
            Layers = layers,
            FinalNormWeight = Tensor("ln_f.weight", d),
            FinalNormBias = Tensor("ln_f.bias", d),
            LanguageModelHead = config.TiedEmbeddings ? null : Tensor(LanguageModelHead, config.VocabSize, d),
        };
    }

    /// <summary>
    /// config.json and the checkpoint, checked as far as can be without reading a tensor (blocks beyond n_layer, a missing
    /// untied head); tensors are then asked for by their names without the <c>transformer.</c> prefix.
    /// </summary>
    internal static (Gpt2Config Config, CheckedCheckpoint Checkpoint) Open(string modelDir)
    {
        var config = Gpt2Config.Load(Path.Combine(modelDir, "config.json"));
        var checkpoint = CheckpointDirectory.Open(modelDir);
        try
        {
            string prefix = PrefixOf(checkpoint, modelDir);
            if (checkpoint.Contains($"{prefix}h.{config.Layers}.ln_1.weight"))
                throw new CheckpointException(
                    $"{modelDir}: the checkpoint has a block h.{config.Layers} but config.json says n_layer={config.Layers}; use the config.json that came with these weights.");
            if (!config.TiedEmbeddings) RequireHead(checkpoint, modelDir);
            return (config, Checked(checkpoint, prefix, config));
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>config.json and wte [V, d] only: what a fingerprint and nearest-token analysis need, without reading the blocks.</summary>
    public static (Gpt2Config Config, T[] TokenEmbedding) LoadTokenEmbedding<T>(string modelDir) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var config = Gpt2Config.Load(Path.Combine(modelDir, "config.json"));
        using var checkpoint = CheckpointDirectory.Open(modelDir);
        return (config, Checked(checkpoint, PrefixOf(checkpoint, modelDir), config).Read<T>("wte.weight", config.VocabSize, config.Embedding));
    }

    private const string LanguageModelHead = "lm_head.weight";

    private static string RequireHead(CheckpointDirectory checkpoint, string modelDir) =>
        checkpoint.Contains(LanguageModelHead) ? LanguageModelHead
        : throw new CheckpointException($"{modelDir}: config.json says tie_word_embeddings=false but the checkpoint has no '{LanguageModelHead}'; download the complete checkpoint.");

    private static string PrefixOf(CheckpointDirectory checkpoint, string modelDir) =>
        checkpoint.Contains(Prefix + "wte.weight") ? Prefix
        : checkpoint.Contains("wte.weight") ? ""
        : throw new CheckpointException(
            $"{modelDir}: no 'wte.weight' or '{Prefix}wte.weight', so this is not a GPT-2 checkpoint ({NearestNames.Describe("wte.weight", checkpoint.TensorNames)}).");

    /// <summary><c>lm_head.weight</c> is never prefixed; every other name takes the checkpoint's <paramref name="prefix"/>.</summary>
    private static CheckedCheckpoint Checked(CheckpointDirectory checkpoint, string prefix, Gpt2Config config) =>
        new(checkpoint, name => name == LanguageModelHead ? name : prefix + name, (c, name, shape) => Check(c, name, shape, config));

    private static TensorInfo Check(CheckpointDirectory checkpoint, string name, ReadOnlySpan<long> shape, Gpt2Config config)
    {
        var info = checkpoint.GetInfo(name);
        if (!info.HasShape(shape))
            throw new CheckpointException(
                $"{info.FilePath}: tensor '{name}' has shape {info.ShapeText} but config.json (n_embd={config.Embedding}, n_inner={config.Inner}, "
                + $"vocab_size={config.VocabSize}, n_positions={config.MaxPositions}) expects {TensorInfo.FormatShape(shape)}; use the config.json that came with these weights.");
        if (!info.DType.IsConvertibleFloat)
            throw new CheckpointException($"{info.FilePath}: tensor '{name}' is stored as {info.DType}; GPT-2 weights must be F32, F16, BF16 or F64.");
        return info;
    }
}

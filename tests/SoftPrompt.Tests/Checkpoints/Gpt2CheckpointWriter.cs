using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Tests.Checkpoints;

/// <summary>
/// Writes <see cref="Gpt2Weights{T}"/> as a Hugging Face GPT-2 directory (config.json + model.safetensors)
/// that <see cref="Gpt2Checkpoint.Load"/> and transformers' GPT2LMHeadModel both read.
/// The tests' checkpoint fixtures; it holds the converted file in memory while writing.
/// </summary>
internal static class Gpt2CheckpointWriter
{
    /// <param name="storeAs">F32, F16, BF16 or F64.</param>
    /// <param name="transformerPrefix">Name tensors "transformer.wte.weight" (GPT2LMHeadModel) instead of "wte.weight".</param>
    public static void Save<T>(Gpt2Weights<T> weights, string modelDir, SafeTensorDType storeAs = SafeTensorDType.F32, bool transformerPrefix = false)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var config = weights.Config;
        Directory.CreateDirectory(modelDir);
        // A shard index would shadow the single file we write, and silently load the old weights.
        if (File.Exists(Path.Combine(modelDir, CheckpointDirectory.IndexFileName)))
            throw new CheckpointException($"{modelDir}: holds a sharded checkpoint ({CheckpointDirectory.IndexFileName}); write the model to an empty directory.");
        string prefix = transformerPrefix ? Gpt2Checkpoint.Prefix : "";
        long d = config.Embedding, inner = config.Inner;
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt"; // transformers refuses safetensors without it
        void Add(string name, T[] data, params ReadOnlySpan<long> shape)
        {
            if (name != LanguageModelHead) name = prefix + name;
            if (typeof(T) == typeof(float)) writer.Add(name, MemoryMarshal.Cast<T, float>(data), shape, storeAs);
            else if (typeof(T) == typeof(double)) writer.Add(name, MemoryMarshal.Cast<T, double>(data), shape, storeAs);
            else throw new NotSupportedException($"Writing {typeof(T).Name} weights is not supported; use float or double.");
        }
        Add("wte.weight", weights.TokenEmbedding, config.VocabSize, d);
        Add("wpe.weight", weights.PositionEmbedding, config.MaxPositions, d);
        for (int i = 0; i < weights.Layers.Length; i++)
        {
            var layer = weights.Layers[i];
            string h = $"h.{i}.";
            Add(h + "ln_1.weight", layer.Norm1Weight, d);
            Add(h + "ln_1.bias", layer.Norm1Bias, d);
            Add(h + "attn.c_attn.weight", layer.QkvWeight, d, 3 * d);
            Add(h + "attn.c_attn.bias", layer.QkvBias, 3 * d);
            Add(h + "attn.c_proj.weight", layer.AttentionProjectionWeight, d, d);
            Add(h + "attn.c_proj.bias", layer.AttentionProjectionBias, d);
            Add(h + "ln_2.weight", layer.Norm2Weight, d);
            Add(h + "ln_2.bias", layer.Norm2Bias, d);
            Add(h + "mlp.c_fc.weight", layer.FcWeight, d, inner);
            Add(h + "mlp.c_fc.bias", layer.FcBias, inner);
            Add(h + "mlp.c_proj.weight", layer.FcProjectionWeight, inner, d);
            Add(h + "mlp.c_proj.bias", layer.FcProjectionBias, d);
        }
        Add("ln_f.weight", weights.FinalNormWeight, d);
        Add("ln_f.bias", weights.FinalNormBias, d);
        if (!config.TiedEmbeddings)
            Add(LanguageModelHead, weights.LanguageModelHead ?? throw new ArgumentException("Untied GPT-2 weights need an LM head."), config.VocabSize, d);
        writer.Save(Path.Combine(modelDir, CheckpointDirectory.SingleFileName));
        AtomicFile.Write(Path.Combine(modelDir, "config.json"), stream => WriteConfig(config, stream));
    }

    private const string LanguageModelHead = "lm_head.weight";

    private static void WriteConfig(Gpt2Config config, Stream stream)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("model_type", "gpt2");
        json.WriteStartArray("architectures");
        json.WriteStringValue("GPT2LMHeadModel");
        json.WriteEndArray();
        json.WriteNumber("vocab_size", config.VocabSize);
        json.WriteNumber("n_positions", config.MaxPositions);
        json.WriteNumber("n_ctx", config.MaxPositions);
        json.WriteNumber("n_embd", config.Embedding);
        json.WriteNumber("n_layer", config.Layers);
        json.WriteNumber("n_head", config.Heads);
        json.WriteNumber("n_inner", config.Inner);
        json.WriteNumber("layer_norm_epsilon", config.LayerNormEpsilon);
        json.WriteString("activation_function", config.Activation);
        json.WriteBoolean("tie_word_embeddings", config.TiedEmbeddings);
        json.WriteBoolean("scale_attn_weights", config.ScaleAttentionWeights);
        json.WriteBoolean("scale_attn_by_inverse_layer_idx", config.ScaleAttentionByInverseLayerIndex);
        json.WriteEndObject();
    }
}

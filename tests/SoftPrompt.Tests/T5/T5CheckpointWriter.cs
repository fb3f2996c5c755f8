using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Models.T5;
using static SoftPrompt.Models.T5.T5TensorNames;

namespace SoftPrompt.Tests.T5;

/// <summary>
/// Writes <see cref="T5Weights{T}"/> as a Hugging Face T5 directory (config.json + model.safetensors) that
/// <see cref="T5Checkpoint.Load"/> and transformers' T5ForConditionalGeneration both read.
/// The tests' checkpoint fixtures; it holds the converted file in memory while writing.
/// </summary>
internal static class T5CheckpointWriter
{
    /// <param name="storeAs">F32, F16, BF16 or F64.</param>
    public static void Save<T>(T5Weights<T> weights, string modelDir, SafeTensorDType storeAs = SafeTensorDType.F32)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var config = weights.Config;
        Directory.CreateDirectory(modelDir);
        // A shard index would shadow the single file we write, and silently load the old weights.
        if (File.Exists(Path.Combine(modelDir, CheckpointDirectory.IndexFileName)))
            throw new CheckpointException($"{modelDir}: holds a sharded checkpoint ({CheckpointDirectory.IndexFileName}); write the model to an empty directory.");
        long d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, vocab = config.VocabSize;
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt"; // transformers refuses safetensors without it
        void Add(string name, T[] data, params ReadOnlySpan<long> shape)
        {
            if (typeof(T) == typeof(float)) writer.Add(name, MemoryMarshal.Cast<T, float>(data), shape, storeAs);
            else if (typeof(T) == typeof(double)) writer.Add(name, MemoryMarshal.Cast<T, double>(data), shape, storeAs);
            else throw new NotSupportedException($"Writing {typeof(T).Name} weights is not supported; use float or double.");
        }
        void AddAttention(string prefix, T5AttentionWeights<T> w)
        {
            Add(prefix + "q.weight", w.Query, a, d);
            Add(prefix + "k.weight", w.Key, a, d);
            Add(prefix + "v.weight", w.Value, a, d);
            Add(prefix + "o.weight", w.Output, d, a);
        }
        void AddFeedForward(string prefix, T5FeedForwardWeights<T> w)
        {
            if (config.IsGated)
            {
                Add(prefix + "wi_0.weight", w.Input, ff, d);
                Add(prefix + "wi_1.weight", w.Linear ?? throw new ArgumentException("Gated T5 weights need the wi_1 (Linear) matrix."), ff, d);
            }
            else Add(prefix + "wi.weight", w.Input, ff, d);
            Add(prefix + "wo.weight", w.Output, d, ff);
        }

        Add(Shared, weights.TokenEmbedding, vocab, d);
        if (!config.TiedEmbeddings)
            Add(LanguageModelHead, weights.LanguageModelHead ?? throw new ArgumentException("Untied T5 weights need an LM head."), vocab, d);
        Add(EncoderRelativeBias, weights.EncoderRelativeBias, config.RelativeBuckets, config.Heads);
        Add(DecoderRelativeBias, weights.DecoderRelativeBias, config.RelativeBuckets, config.Heads);
        for (int i = 0; i < weights.EncoderLayers.Length; i++)
        {
            var layer = weights.EncoderLayers[i];
            string block = Block("encoder", i);
            Add(Norm(block, 0), layer.SelfAttentionNormWeight, d);
            AddAttention(Attention(block, 0, cross: false), layer.SelfAttention);
            Add(Norm(block, 1), layer.FeedForwardNormWeight, d);
            AddFeedForward(FeedForward(block, 1), layer.FeedForward);
        }
        for (int i = 0; i < weights.DecoderLayers.Length; i++)
        {
            var layer = weights.DecoderLayers[i];
            string block = Block("decoder", i);
            Add(Norm(block, 0), layer.SelfAttentionNormWeight, d);
            AddAttention(Attention(block, 0, cross: false), layer.SelfAttention);
            Add(Norm(block, 1), layer.CrossAttentionNormWeight, d);
            AddAttention(Attention(block, 1, cross: true), layer.CrossAttention);
            Add(Norm(block, 2), layer.FeedForwardNormWeight, d);
            AddFeedForward(FeedForward(block, 2), layer.FeedForward);
        }
        Add(EncoderFinalNorm, weights.EncoderFinalNormWeight, d);
        Add(DecoderFinalNorm, weights.DecoderFinalNormWeight, d);
        writer.Save(Path.Combine(modelDir, CheckpointDirectory.SingleFileName));
        AtomicFile.Write(Path.Combine(modelDir, "config.json"), stream => WriteConfig(config, stream));
    }

    private static void WriteConfig(T5Config config, Stream stream)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("model_type", "t5");
        json.WriteStartArray("architectures");
        json.WriteStringValue("T5ForConditionalGeneration");
        json.WriteEndArray();
        json.WriteBoolean("is_encoder_decoder", true);
        json.WriteNumber("vocab_size", config.VocabSize);
        json.WriteNumber("d_model", config.Embedding);
        json.WriteNumber("d_kv", config.HeadSize);
        json.WriteNumber("d_ff", config.FeedForwardSize);
        json.WriteNumber("num_layers", config.Layers);
        json.WriteNumber("num_decoder_layers", config.DecoderLayers);
        json.WriteNumber("num_heads", config.Heads);
        json.WriteNumber("relative_attention_num_buckets", config.RelativeBuckets);
        json.WriteNumber("relative_attention_max_distance", config.RelativeMaxDistance);
        json.WriteString("feed_forward_proj", config.FeedForwardProjection);
        json.WriteString("dense_act_fn", config.IsGated ? "gelu_new" : "relu");
        json.WriteBoolean("is_gated_act", config.IsGated);
        json.WriteBoolean("tie_word_embeddings", config.TiedEmbeddings);
        if (config.RescalesDecoderOutput != config.TiedEmbeddings) json.WriteBoolean("scale_decoder_outputs", config.RescalesDecoderOutput);
        json.WriteNumber("layer_norm_epsilon", config.LayerNormEpsilon);
        json.WriteNumber("decoder_start_token_id", config.DecoderStartTokenId);
        json.WriteNumber("pad_token_id", config.PadTokenId);
        json.WriteNumber("eos_token_id", config.EosTokenId);
        if (config.MaxPositions != T5Config.DefaultMaxPositions) json.WriteNumber("n_positions", config.MaxPositions);
        json.WriteEndObject();
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>Frozen T5 weights on a device: one arena of named tensors declared from the config, uploaded once. Layouts as on the host ([out, in]).</summary>
internal sealed class T5DeviceWeights : IDisposable
{
    /// <param name="bf16">Attention and feed-forward matrices in bf16; embeddings, head, norms and bias tables stay fp32.</param>
    public static T5DeviceWeights Upload(IComputeDevice device, T5Weights<float> host, bool bf16 = false)
        => DeviceArena.Allocate(device, "t5 weights", carve => new T5DeviceWeights(carve, host.Config, host, bf16));

    /// <summary>The layout alone, from the config (no host weights, no device).</summary>
    public static T5DeviceWeights Measure(T5Config config, bool bf16 = false) => DeviceArena.Measure("t5 weights", carve => new T5DeviceWeights(carve, config, null, bf16));

    private T5DeviceWeights(ArenaCarver carve, T5Config config, T5Weights<float>? host, bool bf16)
    {
        Arena = carve.Arena;
        carve.Kind = DeviceMemoryKind.Weights;
        long d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, bias = (long)config.RelativeBuckets * config.Heads;
        DeviceMatrix M(string name, long count, float[]? values) => carve.UploadMatrix(name, count, values, bf16);
        Attention Att(string at, T5AttentionWeights<float>? w) => new(M(at + "q", a * d, w?.Query), M(at + "k", a * d, w?.Key),
            M(at + "v", a * d, w?.Value), M(at + "o", d * a, w?.Output));
        FeedForward Ff(string at, T5FeedForwardWeights<float>? w) => config.IsGated
            ? new(M(at + "wi_0", ff * d, w?.Input), M(at + "wi_1", ff * d, w?.Linear), M(at + "wo", d * ff, w?.Output))
            : new(M(at + "wi", ff * d, w?.Input), default, M(at + "wo", d * ff, w?.Output));

        TokenEmbedding = carve.Upload("shared", config.VocabSize * d, host?.TokenEmbedding);
        Head = config.TiedEmbeddings ? TokenEmbedding : carve.Upload("lm_head", config.VocabSize * d, host?.LanguageModelHead);
        EncoderRelativeBias = carve.Upload("encoder.relative_attention_bias", bias, host?.EncoderRelativeBias);
        DecoderRelativeBias = carve.Upload("decoder.relative_attention_bias", bias, host?.DecoderRelativeBias);
        EncoderFinalNormWeight = carve.Upload("encoder.final_layer_norm", d, host?.EncoderFinalNormWeight);
        DecoderFinalNormWeight = carve.Upload("decoder.final_layer_norm", d, host?.DecoderFinalNormWeight);
        EncoderLayers = new EncoderLayer[config.Layers];
        for (int l = 0; l < EncoderLayers.Length; l++)
        {
            var h = host?.EncoderLayers[l];
            string at = $"encoder.block.{l}.";
            EncoderLayers[l] = new EncoderLayer(carve.Upload(at + "self.layer_norm", d, h?.SelfAttentionNormWeight), Att(at + "self.", h?.SelfAttention),
                carve.Upload(at + "ff.layer_norm", d, h?.FeedForwardNormWeight), Ff(at + "ff.", h?.FeedForward));
        }
        DecoderLayers = new DecoderLayer[config.DecoderLayers];
        for (int l = 0; l < DecoderLayers.Length; l++)
        {
            var h = host?.DecoderLayers[l];
            string at = $"decoder.block.{l}.";
            DecoderLayers[l] = new DecoderLayer(carve.Upload(at + "self.layer_norm", d, h?.SelfAttentionNormWeight), Att(at + "self.", h?.SelfAttention),
                carve.Upload(at + "cross.layer_norm", d, h?.CrossAttentionNormWeight), Att(at + "cross.", h?.CrossAttention),
                carve.Upload(at + "ff.layer_norm", d, h?.FeedForwardNormWeight), Ff(at + "ff.", h?.FeedForward));
        }
    }

    public readonly record struct Attention(DeviceMatrix Query, DeviceMatrix Key, DeviceMatrix Value, DeviceMatrix Output);
    /// <summary>Input: wi or wi_0 [ff, d]; Linear: wi_1 [ff, d] (empty for v1.0); Output: wo [d, ff].</summary>
    public readonly record struct FeedForward(DeviceMatrix Input, DeviceMatrix Linear, DeviceMatrix Output);
    public readonly record struct EncoderLayer(DeviceSpan<float> SelfAttentionNormWeight, Attention SelfAttention, DeviceSpan<float> FeedForwardNormWeight, FeedForward FeedForward);
    public readonly record struct DecoderLayer(DeviceSpan<float> SelfAttentionNormWeight, Attention SelfAttention, DeviceSpan<float> CrossAttentionNormWeight,
        Attention CrossAttention, DeviceSpan<float> FeedForwardNormWeight, FeedForward FeedForward);

    public DeviceArena Arena { get; }
    public long Bytes => Arena.Bytes;
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or the shared embedding when tied.</summary>
    public DeviceSpan<float> Head { get; }
    public DeviceSpan<float> EncoderRelativeBias { get; }
    public DeviceSpan<float> DecoderRelativeBias { get; }
    public DeviceSpan<float> EncoderFinalNormWeight { get; }
    public DeviceSpan<float> DecoderFinalNormWeight { get; }
    public EncoderLayer[] EncoderLayers { get; }
    public DecoderLayer[] DecoderLayers { get; }

    public void Dispose() => Arena.Dispose();
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>Frozen Llama-style weights on a device, plus RoPE's cos/sin tables: one arena of named tensors declared from the config, uploaded once.</summary>
internal sealed class LlamaDeviceWeights : IDisposable
{
    public static LlamaDeviceWeights Upload(IComputeDevice device, LlamaWeights<float> host)
    {
        var config = host.Config;
        var (cos, sin) = LlamaRope.Tables<float>(config.InverseFrequencies<float>(), config.SequenceLimit);
        return DeviceArena.Allocate(device, "llama weights", carve => new LlamaDeviceWeights(carve, config, host, cos, sin));
    }

    /// <summary>The layout alone, from the config (no host weights, no device).</summary>
    public static LlamaDeviceWeights Measure(LlamaConfig config) => DeviceArena.Measure("llama weights", carve => new LlamaDeviceWeights(carve, config, null, null, null));

    private LlamaDeviceWeights(ArenaCarver carve, LlamaConfig config, LlamaWeights<float>? host, float[]? cos, float[]? sin)
    {
        Arena = carve.Arena;
        carve.Kind = DeviceMemoryKind.Weights;
        long d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, vocab = config.VocabSize;
        TokenEmbedding = carve.Upload("embed_tokens", vocab * d, host?.TokenEmbedding);
        HeadWeight = config.TiedEmbeddings ? TokenEmbedding : carve.Upload("lm_head", vocab * d, host?.LanguageModelHead);
        FinalNormWeight = carve.Upload("norm", d, host?.FinalNormWeight);
        long table = (long)config.SequenceLimit * (config.HeadSize / 2);
        RopeCos = carve.Upload("rope.cos", table, cos);
        RopeSin = carve.Upload("rope.sin", table, sin);
        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
        {
            var h = host?.Layers[l];
            string at = $"layers.{l}.";
            Layers[l] = new Layer(carve.Upload(at + "input_layernorm", d, h?.AttentionNormWeight),
                carve.Upload(at + "q_proj", a * d, h?.Query), carve.Upload(at + "k_proj", kv * d, h?.Key), carve.Upload(at + "v_proj", kv * d, h?.Value),
                carve.Upload(at + "o_proj", d * a, h?.Output), carve.Upload(at + "post_attention_layernorm", d, h?.MlpNormWeight),
                carve.Upload(at + "gate_proj", ff * d, h?.Gate), carve.Upload(at + "up_proj", ff * d, h?.Up), carve.Upload(at + "down_proj", d * ff, h?.Down));
        }
    }

    public DeviceArena Arena { get; }
    public long Bytes => Arena.Bytes;
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or the token embedding when tied.</summary>
    public DeviceSpan<float> HeadWeight { get; }
    public DeviceSpan<float> FinalNormWeight { get; }
    /// <summary>[sequence limit, head_dim/2] each, from <see cref="LlamaConfig.InverseFrequencies{T}"/>.</summary>
    public DeviceSpan<float> RopeCos { get; }
    public DeviceSpan<float> RopeSin { get; }
    public Layer[] Layers { get; }

    /// <summary>nn.Linear weights [out, in]: q [a, d], k and v [kv, d], o [d, a], gate and up [ff, d], down [d, ff].</summary>
    public sealed record Layer(DeviceSpan<float> AttentionNormWeight, DeviceSpan<float> Query, DeviceSpan<float> Key, DeviceSpan<float> Value,
        DeviceSpan<float> Output, DeviceSpan<float> MlpNormWeight, DeviceSpan<float> Gate, DeviceSpan<float> Up, DeviceSpan<float> Down);

    public void Dispose() => Arena.Dispose();
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>Frozen Llama-style weights on a device, plus RoPE's cos/sin tables: one arena of named tensors declared from the config, uploaded once.</summary>
internal sealed class LlamaDeviceWeights : IDisposable
{
    /// <param name="bf16">Block matrices (q, k, v, o, gate, up, down) in bf16; embeddings, head, norms, attention biases and RoPE tables stay fp32.</param>
    public static LlamaDeviceWeights Upload(IComputeDevice device, LlamaWeights<float> host, bool bf16 = false)
    {
        var config = host.Config;
        var (cos, sin) = LlamaRope.Tables<float>(config.InverseFrequencies<float>(), config.SequenceLimit);
        return DeviceArena.Allocate(device, "llama weights", carve => new LlamaDeviceWeights(carve, config, host, cos, sin, bf16));
    }

    /// <summary>The layout alone, from the config (no host weights, no device).</summary>
    public static LlamaDeviceWeights Measure(LlamaConfig config, bool bf16 = false) => DeviceArena.Measure("llama weights", carve => new LlamaDeviceWeights(carve, config, null, null, null, bf16));

    private LlamaDeviceWeights(ArenaCarver carve, LlamaConfig config, LlamaWeights<float>? host, float[]? cos, float[]? sin, bool bf16)
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
            bool qkv = config.QueryKeyValueBiases;
            Layers[l] = new Layer(carve.Upload(at + "input_layernorm", d, h?.AttentionNormWeight),
                carve.UploadMatrix(at + "q_proj", a * d, h?.Query, bf16), carve.UploadMatrix(at + "k_proj", kv * d, h?.Key, bf16),
                carve.UploadMatrix(at + "v_proj", kv * d, h?.Value, bf16), carve.UploadMatrix(at + "o_proj", d * a, h?.Output, bf16),
                carve.Upload(at + "post_attention_layernorm", d, h?.MlpNormWeight),
                carve.UploadMatrix(at + "gate_proj", ff * d, h?.Gate, bf16), carve.UploadMatrix(at + "up_proj", ff * d, h?.Up, bf16),
                carve.UploadMatrix(at + "down_proj", d * ff, h?.Down, bf16),
                new Biases(qkv ? carve.Upload(at + "q_proj.bias", a, h?.QueryBias) : default, qkv ? carve.Upload(at + "k_proj.bias", kv, h?.KeyBias) : default,
                    qkv ? carve.Upload(at + "v_proj.bias", kv, h?.ValueBias) : default, config.OutputBias ? carve.Upload(at + "o_proj.bias", d, h?.OutputBias) : default));
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
    public sealed record Layer(DeviceSpan<float> AttentionNormWeight, DeviceMatrix Query, DeviceMatrix Key, DeviceMatrix Value,
        DeviceMatrix Output, DeviceSpan<float> MlpNormWeight, DeviceMatrix Gate, DeviceMatrix Up, DeviceMatrix Down, Biases Bias);

    /// <summary>The attention projections' biases: q [a], k and v [kv] (Qwen2, Llama's attention_bias), o [d] (attention_bias); empty where the model has none.</summary>
    public readonly record struct Biases(DeviceSpan<float> Query, DeviceSpan<float> Key, DeviceSpan<float> Value, DeviceSpan<float> Output);

    public void Dispose() => Arena.Dispose();
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>Frozen Llama-style weights on a device, plus RoPE's cos/sin tables: one arena of named tensors declared from the config, uploaded once.</summary>
internal sealed class LlamaDeviceWeights : IDisposable
{
    /// <param name="bf16">Block matrices (q, k, v, o, gate, up, down) and the LM head in bf16; embeddings, norms, attention biases and RoPE tables stay fp32.</param>
    public static LlamaDeviceWeights Upload(IComputeDevice device, LlamaConfig config, WeightSource<LlamaWeights<float>> source, bool bf16 = false)
    {
        var (cos, sin) = LlamaRope.Tables<float>(config.InverseFrequencies<float>(), config.SequenceLimit);
        return DeviceArena.Allocate(device, "llama weights", carve => new LlamaDeviceWeights(carve, config, source, cos, sin, bf16));
    }

    /// <summary>The layout alone, from the config (no weights, no device).</summary>
    public static LlamaDeviceWeights Measure(LlamaConfig config, bool bf16 = false) => DeviceArena.Measure("llama weights", carve => new LlamaDeviceWeights(carve, config, null, null, null, bf16));

    /// <summary>Every tensor as the checkpoint stores it (nn.Linear [out, in]), so both sources copy without reshaping.</summary>
    private LlamaDeviceWeights(ArenaCarver carve, LlamaConfig config, WeightSource<LlamaWeights<float>>? source, float[]? cos, float[]? sin, bool bf16)
    {
        Arena = carve.Arena;
        carve.Kind = DeviceMemoryKind.Weights;
        long d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate, vocab = config.VocabSize;
        TensorValues? W(Func<LlamaWeights<float>, float[]?> host, string name, params long[] shape) => source?.Tensor(host, name, shape);
        TokenEmbedding = carve.Upload("embed_tokens", vocab * d, W(w => w.TokenEmbedding, "embed_tokens.weight", vocab, d));
        // In bf16 the head is a bf16 matrix (its GEMMs on tensor cores, as PyTorch's bf16 autocast runs it). Tied, it is a bf16
        // copy of embed_tokens beside the fp32 table: the embedding lookup and the prompt initialisation read it in fp32.
        HeadWeight = config.TiedEmbeddings
            ? bf16 ? DeviceLanguageModelHead.UploadWeight(carve, "lm_head (bf16 copy of embed_tokens)", vocab, d, W(w => w.TokenEmbedding, "embed_tokens.weight", vocab, d), bf16: true) : TokenEmbedding
            : DeviceLanguageModelHead.UploadWeight(carve, "lm_head", vocab, d, W(w => w.LanguageModelHead, LlamaCheckpoint.LanguageModelHead, vocab, d), bf16);
        FinalNormWeight = carve.Upload("norm", d, W(w => w.FinalNormWeight, "norm.weight", d));
        long table = (long)config.SequenceLimit * (config.HeadSize / 2);
        RopeCos = carve.Upload("rope.cos", table, cos);
        RopeSin = carve.Upload("rope.sin", table, sin);
        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
        {
            int layer = l;
            string at = $"layers.{l}.";
            TensorValues? H(Func<LlamaLayerWeights<float>, float[]> host, string name, params long[] shape) => W(w => host(w.Layers[layer]), at + name, shape);
            DeviceMatrix M(string arenaName, Func<LlamaLayerWeights<float>, float[]> host, string name, long rows, long columns) =>
                carve.UploadMatrix(at + arenaName, rows * columns, H(host, name, rows, columns), bf16);
            DeviceSpan<float> Bias(string projection, Func<LlamaLayerWeights<float>, float[]> host, long size) =>
                carve.Upload(at + projection + ".bias", size, H(host, $"self_attn.{projection}.bias", size));
            bool qkv = config.QueryKeyValueBiases;
            Layers[l] = new Layer(carve.Upload(at + "input_layernorm", d, H(h => h.AttentionNormWeight, "input_layernorm.weight", d)),
                M("q_proj", h => h.Query, "self_attn.q_proj.weight", a, d), M("k_proj", h => h.Key, "self_attn.k_proj.weight", kv, d),
                M("v_proj", h => h.Value, "self_attn.v_proj.weight", kv, d), M("o_proj", h => h.Output, "self_attn.o_proj.weight", d, a),
                carve.Upload(at + "post_attention_layernorm", d, H(h => h.MlpNormWeight, "post_attention_layernorm.weight", d)),
                M("gate_proj", h => h.Gate, "mlp.gate_proj.weight", ff, d), M("up_proj", h => h.Up, "mlp.up_proj.weight", ff, d),
                M("down_proj", h => h.Down, "mlp.down_proj.weight", d, ff),
                new Biases(qkv ? Bias("q_proj", h => h.QueryBias, a) : default, qkv ? Bias("k_proj", h => h.KeyBias, kv) : default,
                    qkv ? carve.UploadMatrix(at + "v_proj.bias", kv, H(h => h.ValueBias, "self_attn.v_proj.bias", kv), bf16) : default, config.OutputBias ? Bias("o_proj", h => h.OutputBias, d) : default));
        }
    }

    public DeviceArena Arena { get; }
    public long Bytes => Arena.Bytes;
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or the token embedding when tied; bf16 in bf16 precision (tied: a bf16 copy of embed_tokens).</summary>
    public DeviceMatrix HeadWeight { get; }
    public DeviceSpan<float> FinalNormWeight { get; }
    /// <summary>[sequence limit, head_dim/2] each, from <see cref="LlamaConfig.InverseFrequencies{T}"/>.</summary>
    public DeviceSpan<float> RopeCos { get; }
    public DeviceSpan<float> RopeSin { get; }
    public Layer[] Layers { get; }

    /// <summary>nn.Linear weights [out, in]: q [a, d], k and v [kv, d], o [d, a], gate and up [ff, d], down [d, ff].</summary>
    public sealed record Layer(DeviceSpan<float> AttentionNormWeight, DeviceMatrix Query, DeviceMatrix Key, DeviceMatrix Value,
        DeviceMatrix Output, DeviceSpan<float> MlpNormWeight, DeviceMatrix Gate, DeviceMatrix Up, DeviceMatrix Down, Biases Bias);

    /// <summary>The attention projections' biases: q [a], k and v [kv] (Qwen2, Llama's attention_bias), o [d] (attention_bias); empty where the model has none.</summary>
    public readonly record struct Biases(DeviceSpan<float> Query, DeviceSpan<float> Key, DeviceMatrix Value, DeviceSpan<float> Output);

    public void Dispose() => Arena.Dispose();
}

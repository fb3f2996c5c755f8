using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>Frozen GPT-2 weights on a device: one arena of named tensors declared from the config, uploaded once.</summary>
internal sealed class Gpt2DeviceWeights : IDisposable
{
    /// <param name="bf16">Block matrices (c_attn, attn.c_proj, c_fc, mlp.c_proj) in bf16; embeddings, norms and biases stay fp32.</param>
    public static Gpt2DeviceWeights Upload(IComputeDevice device, Gpt2Weights<float> host, bool bf16 = false)
        => DeviceArena.Allocate(device, "gpt2 weights", carve => new Gpt2DeviceWeights(carve, host.Config, host, bf16));

    /// <summary>The layout alone, from the config (no host weights, no device).</summary>
    public static Gpt2DeviceWeights Measure(Gpt2Config config, bool bf16 = false) => DeviceArena.Measure("gpt2 weights", carve => new Gpt2DeviceWeights(carve, config, null, bf16));

    private Gpt2DeviceWeights(ArenaCarver carve, Gpt2Config config, Gpt2Weights<float>? host, bool bf16)
    {
        Arena = carve.Arena;
        carve.Kind = DeviceMemoryKind.Weights;
        long c = config.Embedding, inner = config.Inner;
        TokenEmbedding = carve.Upload("wte", config.VocabSize * c, host?.TokenEmbedding);
        HeadWeight = config.TiedEmbeddings ? TokenEmbedding : carve.Upload("lm_head", config.VocabSize * c, host?.LanguageModelHead);
        PositionEmbedding = carve.Upload("wpe", config.MaxPositions * c, host?.PositionEmbedding);
        FinalNormWeight = carve.Upload("ln_f.weight", c, host?.FinalNormWeight);
        FinalNormBias = carve.Upload("ln_f.bias", c, host?.FinalNormBias);
        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
        {
            var h = host?.Layers[l];
            string at = $"h.{l}.";
            Layers[l] = new Layer(
                carve.Upload(at + "ln_1.weight", c, h?.Norm1Weight), carve.Upload(at + "ln_1.bias", c, h?.Norm1Bias),
                carve.UploadMatrix(at + "attn.c_attn.weight", c * 3 * c, h?.QkvWeight, bf16), carve.Upload(at + "attn.c_attn.bias", 3 * c, h?.QkvBias),
                carve.UploadMatrix(at + "attn.c_proj.weight", c * c, h?.AttentionProjectionWeight, bf16), carve.Upload(at + "attn.c_proj.bias", c, h?.AttentionProjectionBias),
                carve.Upload(at + "ln_2.weight", c, h?.Norm2Weight), carve.Upload(at + "ln_2.bias", c, h?.Norm2Bias),
                carve.UploadMatrix(at + "mlp.c_fc.weight", c * inner, h?.FcWeight, bf16), carve.Upload(at + "mlp.c_fc.bias", inner, h?.FcBias),
                carve.UploadMatrix(at + "mlp.c_proj.weight", inner * c, h?.FcProjectionWeight, bf16), carve.Upload(at + "mlp.c_proj.bias", c, h?.FcProjectionBias));
        }
    }

    public DeviceArena Arena { get; }
    public long Bytes => Arena.Bytes;
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or wte when tied.</summary>
    public DeviceSpan<float> HeadWeight { get; }
    public DeviceSpan<float> PositionEmbedding { get; }
    public DeviceSpan<float> FinalNormWeight { get; }
    public DeviceSpan<float> FinalNormBias { get; }
    public Layer[] Layers { get; }

    /// <summary>Conv1D weights as stored, [in, out].</summary>
    public sealed record Layer(DeviceSpan<float> Norm1Weight, DeviceSpan<float> Norm1Bias, DeviceMatrix QkvWeight, DeviceSpan<float> QkvBias,
        DeviceMatrix AttentionProjectionWeight, DeviceSpan<float> AttentionProjectionBias, DeviceSpan<float> Norm2Weight, DeviceSpan<float> Norm2Bias,
        DeviceMatrix FcWeight, DeviceSpan<float> FcBias, DeviceMatrix FcProjectionWeight, DeviceSpan<float> FcProjectionBias);

    public void Dispose() => Arena.Dispose();
}

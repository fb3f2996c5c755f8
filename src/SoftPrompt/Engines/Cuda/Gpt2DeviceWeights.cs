using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>Frozen GPT-2 weights on a device: one arena of named tensors declared from the config, uploaded once.</summary>
internal sealed class Gpt2DeviceWeights : IDisposable
{
    public static Gpt2DeviceWeights Upload(IComputeDevice device, Gpt2Weights<float> host)
        => DeviceArena.Allocate(device, "gpt2 weights", carve => new Gpt2DeviceWeights(carve, host.Config, host));

    /// <summary>The layout alone, from the config (no host weights, no device).</summary>
    public static Gpt2DeviceWeights Measure(Gpt2Config config) => DeviceArena.Measure("gpt2 weights", carve => new Gpt2DeviceWeights(carve, config, null));

    private Gpt2DeviceWeights(ArenaCarver carve, Gpt2Config config, Gpt2Weights<float>? host)
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
                carve.Upload(at + "attn.c_attn.weight", c * 3 * c, h?.QkvWeight), carve.Upload(at + "attn.c_attn.bias", 3 * c, h?.QkvBias),
                carve.Upload(at + "attn.c_proj.weight", c * c, h?.AttentionProjectionWeight), carve.Upload(at + "attn.c_proj.bias", c, h?.AttentionProjectionBias),
                carve.Upload(at + "ln_2.weight", c, h?.Norm2Weight), carve.Upload(at + "ln_2.bias", c, h?.Norm2Bias),
                carve.Upload(at + "mlp.c_fc.weight", c * inner, h?.FcWeight), carve.Upload(at + "mlp.c_fc.bias", inner, h?.FcBias),
                carve.Upload(at + "mlp.c_proj.weight", inner * c, h?.FcProjectionWeight), carve.Upload(at + "mlp.c_proj.bias", c, h?.FcProjectionBias));
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
    public sealed record Layer(DeviceSpan<float> Norm1Weight, DeviceSpan<float> Norm1Bias, DeviceSpan<float> QkvWeight, DeviceSpan<float> QkvBias,
        DeviceSpan<float> AttentionProjectionWeight, DeviceSpan<float> AttentionProjectionBias, DeviceSpan<float> Norm2Weight, DeviceSpan<float> Norm2Bias,
        DeviceSpan<float> FcWeight, DeviceSpan<float> FcBias, DeviceSpan<float> FcProjectionWeight, DeviceSpan<float> FcProjectionBias);

    public void Dispose() => Arena.Dispose();
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>Frozen GPT-2 weights on a device: one arena of named tensors declared from the config, uploaded once.</summary>
internal sealed class Gpt2DeviceWeights : IDisposable
{
    /// <param name="bf16">Block matrices (c_attn, attn.c_proj, c_fc, mlp.c_proj) and the LM head in bf16; embeddings, norms and biases stay fp32.</param>
    public static Gpt2DeviceWeights Upload(IComputeDevice device, Gpt2Config config, WeightSource<Gpt2Weights<float>> source, bool bf16 = false)
        => DeviceArena.Allocate(device, "gpt2 weights", carve => new Gpt2DeviceWeights(carve, config, source, bf16));

    /// <summary>The layout alone, from the config (no weights, no device).</summary>
    public static Gpt2DeviceWeights Measure(Gpt2Config config, bool bf16 = false) => DeviceArena.Measure("gpt2 weights", carve => new Gpt2DeviceWeights(carve, config, null, bf16));

    /// <summary>Every tensor as the checkpoint stores it (Conv1D [in, out], c_attn fused q|k|v), so both sources copy without reshaping.</summary>
    private Gpt2DeviceWeights(ArenaCarver carve, Gpt2Config config, WeightSource<Gpt2Weights<float>>? source, bool bf16)
    {
        Arena = carve.Arena;
        carve.Kind = DeviceMemoryKind.Weights;
        long c = config.Embedding, inner = config.Inner, vocab = config.VocabSize;
        TensorValues? W(Func<Gpt2Weights<float>, float[]?> host, string name, params long[] shape) => source?.Tensor(host, name, shape);
        TokenEmbedding = carve.Upload("wte", vocab * c, W(w => w.TokenEmbedding, "wte.weight", vocab, c));
        // In bf16 the head is a bf16 matrix (its GEMMs on tensor cores, as PyTorch's bf16 autocast runs it). Tied, it is a bf16
        // copy of wte beside the fp32 table: the embedding lookup and the prompt initialisation read wte in fp32.
        HeadWeight = config.TiedEmbeddings
            ? bf16 ? DeviceLanguageModelHead.UploadWeight(carve, "lm_head (bf16 copy of wte)", vocab, c, W(w => w.TokenEmbedding, "wte.weight", vocab, c), bf16: true) : TokenEmbedding
            : DeviceLanguageModelHead.UploadWeight(carve, "lm_head", vocab, c, W(w => w.LanguageModelHead, "lm_head.weight", vocab, c), bf16);
        PositionEmbedding = carve.Upload("wpe", config.MaxPositions * c, W(w => w.PositionEmbedding, "wpe.weight", config.MaxPositions, c));
        FinalNormWeight = carve.Upload("ln_f.weight", c, W(w => w.FinalNormWeight, "ln_f.weight", c));
        FinalNormBias = carve.Upload("ln_f.bias", c, W(w => w.FinalNormBias, "ln_f.bias", c));
        Layers = new Layer[config.Layers];
        for (int l = 0; l < Layers.Length; l++)
        {
            int layer = l;
            string at = $"h.{l}.";
            // Arena names are the checkpoint's, so one name serves both.
            DeviceSpan<float> V(Func<Gpt2LayerWeights<float>, float[]> host, string name, params long[] shape) =>
                carve.Upload(at + name, shape.Aggregate(1L, (a, b) => a * b), W(w => host(w.Layers[layer]), at + name, shape));
            DeviceMatrix M(Func<Gpt2LayerWeights<float>, float[]> host, string name, long rows, long columns) =>
                carve.UploadMatrix(at + name, rows * columns, W(w => host(w.Layers[layer]), at + name, rows, columns), bf16);
            // The bias of a GEMM whose output is bf16 in bf16 precision: cuBLASLt takes a bias in its output's type.
            DeviceMatrix B(Func<Gpt2LayerWeights<float>, float[]> host, string name, long size) =>
                carve.UploadMatrix(at + name, size, W(w => host(w.Layers[layer]), at + name, size), bf16);
            Layers[l] = new Layer(
                V(h => h.Norm1Weight, "ln_1.weight", c), V(h => h.Norm1Bias, "ln_1.bias", c),
                M(h => h.QkvWeight, "attn.c_attn.weight", c, 3 * c), B(h => h.QkvBias, "attn.c_attn.bias", 3 * c),
                M(h => h.AttentionProjectionWeight, "attn.c_proj.weight", c, c), V(h => h.AttentionProjectionBias, "attn.c_proj.bias", c),
                V(h => h.Norm2Weight, "ln_2.weight", c), V(h => h.Norm2Bias, "ln_2.bias", c),
                M(h => h.FcWeight, "mlp.c_fc.weight", c, inner), B(h => h.FcBias, "mlp.c_fc.bias", inner),
                M(h => h.FcProjectionWeight, "mlp.c_proj.weight", inner, c), V(h => h.FcProjectionBias, "mlp.c_proj.bias", c));
        }
    }

    public DeviceArena Arena { get; }
    public long Bytes => Arena.Bytes;
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or wte when tied; bf16 in bf16 precision (tied: a bf16 copy of wte).</summary>
    public DeviceMatrix HeadWeight { get; }
    public DeviceSpan<float> PositionEmbedding { get; }
    public DeviceSpan<float> FinalNormWeight { get; }
    public DeviceSpan<float> FinalNormBias { get; }
    public Layer[] Layers { get; }

    /// <summary>Conv1D weights as stored, [in, out].</summary>
    public sealed record Layer(DeviceSpan<float> Norm1Weight, DeviceSpan<float> Norm1Bias, DeviceMatrix QkvWeight, DeviceMatrix QkvBias,
        DeviceMatrix AttentionProjectionWeight, DeviceSpan<float> AttentionProjectionBias, DeviceSpan<float> Norm2Weight, DeviceSpan<float> Norm2Bias,
        DeviceMatrix FcWeight, DeviceMatrix FcBias, DeviceMatrix FcProjectionWeight, DeviceSpan<float> FcProjectionBias);

    public void Dispose() => Arena.Dispose();
}

using SoftPrompt.Cuda;
using SoftPrompt.Models.T5;
using static SoftPrompt.Models.T5.T5TensorNames;

namespace SoftPrompt.Engines;

/// <summary>Frozen T5 weights on a device: one arena of named tensors declared from the config, uploaded once. Layouts as on the host ([out, in]).</summary>
internal sealed class T5DeviceWeights : IDisposable
{
    /// <param name="bf16">Attention and feed-forward matrices and the LM head in bf16; embeddings, norms and bias tables stay fp32.</param>
    public static T5DeviceWeights Upload(IComputeDevice device, T5Config config, WeightSource<T5Weights<float>> source, bool bf16 = false)
        => DeviceArena.Allocate(device, "t5 weights", carve => new T5DeviceWeights(carve, config, source, bf16));

    /// <summary>The layout alone, from the config (no weights, no device).</summary>
    public static T5DeviceWeights Measure(T5Config config, bool bf16 = false) => DeviceArena.Measure("t5 weights", carve => new T5DeviceWeights(carve, config, null, bf16));

    private T5DeviceWeights(ArenaCarver carve, T5Config config, WeightSource<T5Weights<float>>? source, bool bf16)
    {
        Arena = carve.Arena;
        carve.Kind = DeviceMemoryKind.Weights;
        long d = config.Embedding, a = config.AttentionSize, ff = config.FeedForwardSize, vocab = config.VocabSize;
        TensorValues? W(Func<T5Weights<float>, float[]?> host, string name, params long[] shape) => source?.Tensor(host, name, shape);
        DeviceSpan<float> V(string arenaName, Func<T5Weights<float>, float[]?> host, string name, params long[] shape) =>
            carve.Upload(arenaName, shape.Aggregate(1L, (x, y) => x * y), W(host, name, shape));
        DeviceMatrix M(string arenaName, Func<T5Weights<float>, float[]?> host, string name, long rows, long columns) =>
            carve.UploadMatrix(arenaName, rows * columns, W(host, name, rows, columns), bf16);
        // The host weights of a block's attention or feed-forward: the checkpoint's prefix says which block, the selector where it is.
        // q, k and v stacked [3a, d]: self-attention projects with all three in one GEMM, cross-attention with q, then k and v together.
        Attention Att(string at, string prefix, Func<T5Weights<float>, T5AttentionWeights<float>> host)
        {
            (string, long, TensorValues?) Part(string name, Func<T5AttentionWeights<float>, float[]?> selector) =>
                (at + name, a * d, W(w => selector(host(w)), prefix + name + ".weight", a, d));
            var qkv = carve.UploadStackedMatrix(at + "qkv", bf16, Part("q", h => h.Query), Part("k", h => h.Key), Part("v", h => h.Value));
            return new(qkv, a * d, M(at + "o", w => host(w).Output, prefix + "o.weight", d, a));
        }
        FeedForward Ff(string at, string prefix, Func<T5Weights<float>, T5FeedForwardWeights<float>> host) => config.IsGated
            ? new(M(at + "wi_0", w => host(w).Input, prefix + "wi_0.weight", ff, d), M(at + "wi_1", w => host(w).Linear, prefix + "wi_1.weight", ff, d),
                M(at + "wo", w => host(w).Output, prefix + "wo.weight", d, ff))
            : new(M(at + "wi", w => host(w).Input, prefix + "wi.weight", ff, d), default, M(at + "wo", w => host(w).Output, prefix + "wo.weight", d, ff));

        TokenEmbedding = V("shared", w => w.TokenEmbedding, Shared, vocab, d);
        // In bf16 the head is a bf16 matrix (its GEMMs on tensor cores, as PyTorch's bf16 autocast runs it). Tied (v1.0), it is a
        // bf16 copy of shared beside the fp32 table: the embedding lookup and the prompt initialisation read shared in fp32.
        Head = config.TiedEmbeddings
            ? bf16 ? DeviceLanguageModelHead.UploadWeight(carve, "lm_head (bf16 copy of shared)", vocab, d, W(w => w.TokenEmbedding, Shared, vocab, d), bf16: true) : TokenEmbedding
            : DeviceLanguageModelHead.UploadWeight(carve, "lm_head", vocab, d, W(w => w.LanguageModelHead, LanguageModelHead, vocab, d), bf16);
        EncoderRelativeBias = V("encoder.relative_attention_bias", w => w.EncoderRelativeBias, T5TensorNames.EncoderRelativeBias, config.RelativeBuckets, config.Heads);
        DecoderRelativeBias = V("decoder.relative_attention_bias", w => w.DecoderRelativeBias, T5TensorNames.DecoderRelativeBias, config.RelativeBuckets, config.Heads);
        EncoderFinalNormWeight = V("encoder.final_layer_norm", w => w.EncoderFinalNormWeight, EncoderFinalNorm, d);
        DecoderFinalNormWeight = V("decoder.final_layer_norm", w => w.DecoderFinalNormWeight, DecoderFinalNorm, d);
        EncoderLayers = new EncoderLayer[config.Layers];
        for (int l = 0; l < EncoderLayers.Length; l++)
        {
            int layer = l;
            string at = $"encoder.block.{l}.", block = Block("encoder", l);
            EncoderLayers[l] = new EncoderLayer(V(at + "self.layer_norm", w => w.EncoderLayers[layer].SelfAttentionNormWeight, Norm(block, 0), d),
                Att(at + "self.", T5TensorNames.Attention(block, 0, cross: false), w => w.EncoderLayers[layer].SelfAttention),
                V(at + "ff.layer_norm", w => w.EncoderLayers[layer].FeedForwardNormWeight, Norm(block, 1), d),
                Ff(at + "ff.", T5TensorNames.FeedForward(block, 1), w => w.EncoderLayers[layer].FeedForward));
        }
        DecoderLayers = new DecoderLayer[config.DecoderLayers];
        for (int l = 0; l < DecoderLayers.Length; l++)
        {
            int layer = l;
            string at = $"decoder.block.{l}.", block = Block("decoder", l);
            DecoderLayers[l] = new DecoderLayer(V(at + "self.layer_norm", w => w.DecoderLayers[layer].SelfAttentionNormWeight, Norm(block, 0), d),
                Att(at + "self.", T5TensorNames.Attention(block, 0, cross: false), w => w.DecoderLayers[layer].SelfAttention),
                V(at + "cross.layer_norm", w => w.DecoderLayers[layer].CrossAttentionNormWeight, Norm(block, 1), d),
                Att(at + "cross.", T5TensorNames.Attention(block, 1, cross: true), w => w.DecoderLayers[layer].CrossAttention),
                V(at + "ff.layer_norm", w => w.DecoderLayers[layer].FeedForwardNormWeight, Norm(block, 2), d),
                Ff(at + "ff.", T5TensorNames.FeedForward(block, 2), w => w.DecoderLayers[layer].FeedForward));
        }
    }

    /// <summary>QueryKeyValue: q, k and v stacked [3a, d] (<see cref="Query"/>, <see cref="Key"/>, <see cref="Value"/>, <see cref="KeyValue"/> are its row blocks); Output: o [d, a].</summary>
    public readonly record struct Attention(DeviceMatrix QueryKeyValue, long ProjectionElements, DeviceMatrix Output)
    {
        public DeviceMatrix Query => QueryKeyValue.Slice(0, ProjectionElements);
        public DeviceMatrix Key => QueryKeyValue.Slice(ProjectionElements, ProjectionElements);
        public DeviceMatrix Value => QueryKeyValue.Slice(2 * ProjectionElements, ProjectionElements);
        public DeviceMatrix KeyValue => QueryKeyValue.Slice(ProjectionElements, 2 * ProjectionElements);
    }
    /// <summary>Input: wi or wi_0 [ff, d]; Linear: wi_1 [ff, d] (empty for v1.0); Output: wo [d, ff].</summary>
    public readonly record struct FeedForward(DeviceMatrix Input, DeviceMatrix Linear, DeviceMatrix Output);
    public readonly record struct EncoderLayer(DeviceSpan<float> SelfAttentionNormWeight, Attention SelfAttention, DeviceSpan<float> FeedForwardNormWeight, FeedForward FeedForward);
    public readonly record struct DecoderLayer(DeviceSpan<float> SelfAttentionNormWeight, Attention SelfAttention, DeviceSpan<float> CrossAttentionNormWeight,
        Attention CrossAttention, DeviceSpan<float> FeedForwardNormWeight, FeedForward FeedForward);

    public DeviceArena Arena { get; }
    public long Bytes => Arena.Bytes;
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or the shared embedding when tied; bf16 in bf16 precision (tied: a bf16 copy of shared).</summary>
    public DeviceMatrix Head { get; }
    public DeviceSpan<float> EncoderRelativeBias { get; }
    public DeviceSpan<float> DecoderRelativeBias { get; }
    public DeviceSpan<float> EncoderFinalNormWeight { get; }
    public DeviceSpan<float> DecoderFinalNormWeight { get; }
    public EncoderLayer[] EncoderLayers { get; }
    public DecoderLayer[] DecoderLayers { get; }

    public void Dispose() => Arena.Dispose();
}

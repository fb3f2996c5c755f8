namespace SoftPrompt.Models.T5;

/// <summary>
/// Named T5 shapes for benchmarks (random weights: no download needed). They are the v1.1 / LM-adapted
/// checkpoints (google/t5-v1_1-*, t5-base-lm-adapt …), the ones prompt tuning is run on since Lester et al.:
/// gated-GELU feed-forward, untied lm_head, 32 relative buckets up to distance 128, vocabulary 32128.
/// </summary>
public static class T5Shapes
{
    public static readonly IReadOnlyDictionary<string, T5Config> Named = new Dictionary<string, T5Config>
    {
        ["t5-small"] = V1_1(embedding: 512, heads: 6, feedForward: 1024, layers: 8),
        ["t5-base"] = V1_1(embedding: 768, heads: 12, feedForward: 2048, layers: 12),
        ["t5-large"] = V1_1(embedding: 1024, heads: 16, feedForward: 2816, layers: 24),
        ["t5-xl"] = V1_1(embedding: 2048, heads: 32, feedForward: 5120, layers: 24),
        ["t5-xxl"] = V1_1(embedding: 4096, heads: 64, feedForward: 10240, layers: 24),
    };

    private static T5Config V1_1(int embedding, int heads, int feedForward, int layers) => new(
        VocabSize: 32128, Embedding: embedding, HeadSize: 64, FeedForwardSize: feedForward, Layers: layers, DecoderLayers: layers,
        Heads: heads, RelativeBuckets: 32, RelativeMaxDistance: 128, FeedForwardProjection: T5Config.GatedGelu, TiedEmbeddings: false,
        LayerNormEpsilon: 1e-6);
}

namespace SoftPrompt.Models.Llama;

/// <summary>
/// Named Llama-style shapes for benchmarks (random weights: no download needed), copied from the published configs:
/// Llama-3.2-1B/3B (grouped-query, tied head, θ 500000 with llama3 scaling), Llama-2-7B (multi-head, untied) and
/// Llama-3-8B (grouped-query, untied). Positions are capped at 4096, all a prompt-tuning step needs.
/// </summary>
public static class LlamaShapes
{
    private static readonly LlamaRopeScaling Llama3Scaling = new(LlamaRopeScaling.Llama3, Factor: 32, LowFrequencyFactor: 1, HighFrequencyFactor: 4, OriginalMaxPositions: 8192);

    public static readonly IReadOnlyDictionary<string, LlamaConfig> Named = new Dictionary<string, LlamaConfig>
    {
        ["llama3.2-1b"] = new(VocabSize: 128256, Embedding: 2048, Layers: 16, Heads: 32, KeyValueHeads: 8, HeadSize: 64, Intermediate: 8192,
            MaxPositions: 4096, RmsNormEpsilon: 1e-5, RopeTheta: 500000, RopeScaling: Llama3Scaling, TiedEmbeddings: true),
        ["llama3.2-3b"] = new(VocabSize: 128256, Embedding: 3072, Layers: 28, Heads: 24, KeyValueHeads: 8, HeadSize: 128, Intermediate: 8192,
            MaxPositions: 4096, RmsNormEpsilon: 1e-5, RopeTheta: 500000, RopeScaling: Llama3Scaling, TiedEmbeddings: true),
        ["llama2-7b"] = new(VocabSize: 32000, Embedding: 4096, Layers: 32, Heads: 32, KeyValueHeads: 32, HeadSize: 128, Intermediate: 11008,
            MaxPositions: 4096, RmsNormEpsilon: 1e-5, RopeTheta: 10000, RopeScaling: null, TiedEmbeddings: false),
        ["llama3-8b"] = new(VocabSize: 128256, Embedding: 4096, Layers: 32, Heads: 32, KeyValueHeads: 8, HeadSize: 128, Intermediate: 14336,
            MaxPositions: 4096, RmsNormEpsilon: 1e-5, RopeTheta: 500000, RopeScaling: null, TiedEmbeddings: false),
    };
}

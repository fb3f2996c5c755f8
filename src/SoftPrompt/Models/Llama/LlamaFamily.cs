using SoftPrompt.Engines;
using static System.FormattableString;

namespace SoftPrompt.Models.Llama;

/// <summary>
/// Llama-style decoders: RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention (Llama 2/3 and kin). Mistral's
/// config names a Llama-style model with a sliding attention window; it opens as "llama", limited to the window
/// (<see cref="LlamaConfig.SequenceLimit"/>), where it is exact. Qwen2's is the same model with q/k/v biases
/// (<see cref="LlamaConfig.QueryKeyValueBiases"/>), and opens as "llama" too.
/// </summary>
internal sealed class LlamaFamily : ModelFamily<LlamaConfig>
{
    public static readonly LlamaFamily Instance = new();

    private LlamaFamily() { }

    public override string Name => "llama";
    public override string DisplayName => "Llama";
    public override string Summary => "decoder-only: RMSNorm, RoPE, SwiGLU, grouped-query attention";
    public override bool InputStartsWithBos => true;
    private protected override IReadOnlyList<string> ModelTypes => ["llama", "mistral", LlamaConfig.Qwen2ModelType];
    // "Qwen2For…" and "Qwen2Model", not "Qwen2": Qwen2-MoE and Qwen2-VL are other architectures.
    private protected override IReadOnlyList<string> ArchitecturePrefixes => ["Llama", "Mistral", "Qwen2For", "Qwen2Model"];
    private protected override IReadOnlyDictionary<string, LlamaConfig> Shapes => LlamaShapes.Named;

    public override IModelConfig LoadConfig(string modelDirectory) => LlamaConfig.Load(Path.Combine(modelDirectory, "config.json"));

    private protected override (LlamaConfig Config, float[] TokenEmbedding) ReadTokenEmbedding(string modelDirectory) => LlamaCheckpoint.LoadTokenEmbedding<float>(modelDirectory);

    private protected override string Fingerprint(LlamaConfig config, float[] tokenEmbedding) => ModelFingerprint.Of(config, tokenEmbedding);

    /// <summary>The CPU engine computes on host weights; a device engine streams the checkpoint into device memory instead.</summary>
    private protected override LoadedModel Load(string modelDirectory, string device, string origin, EngineOptions? options)
    {
        if (device == "cpu") return EngineFactory.Create(LlamaCheckpoint.Load<float>(modelDirectory), device, origin, options);
        var (config, checkpoint) = LlamaCheckpoint.Open(modelDirectory);
        using var _ = checkpoint;
        return EngineFactory.CreateStreamed(config, checkpoint, "embed_tokens.weight", device, origin, options, Fingerprint,
            engineOptions => CudaEngines.Create(config, new CheckpointWeightSource<LlamaWeights<float>>(checkpoint), device, engineOptions));
    }

    private protected override LoadedModel CreateRandom(LlamaConfig shape, string device, string origin, EngineOptions? options) =>
        EngineFactory.Create(LlamaWeights<float>.CreateRandom(shape, seed: 1), device, origin, options);

    private protected override DeviceMemoryPlan MeasureDeviceMemory(LlamaConfig config, TokenBatch batch, PromptLayout layout, DeviceMemoryPlan.PlanRequest request) =>
        DeviceMemoryPlan.Measure(config, batch, layout, request);

    private protected override IReadOnlyList<(string Label, string Text)> Describe(LlamaConfig c)
    {
        string rope = Invariant($"RoPE θ={c.RopeTheta}") + (c.RopeScaling is { } s ? Invariant($", {s.Type} scaling ×{s.Factor}") : "");
        string attention = c.KeyValueHeads == c.Heads ? "multi-head" : c.KeyValueHeads == 1 ? "multi-query" : Invariant($"grouped-query, {c.KeyValueHeads} kv heads");
        return
        [
            ("family", $"llama (RMSNorm, SwiGLU, {rope}, {(c.TiedEmbeddings ? "tied LM head" : "separate lm_head")}{BiasText(c)})"),
            ("layers", Invariant($"{c.Layers}")),
            ("d_model", Invariant($"{c.Embedding} ({c.Heads} heads × {c.HeadSize}, {attention})")),
            ("mlp", Invariant($"{c.Intermediate}")),
            ("vocab", Invariant($"{c.VocabSize}")),
            ("positions", Invariant($"{c.MaxPositions}")),
        ];
    }

    private protected override string Outline(LlamaConfig c) =>
        Invariant($"Llama ({c.Layers} layers, d={c.Embedding}, {c.Heads} query heads on {c.KeyValueHeads} key/value heads (grouped-query){BiasText(c)}, SwiGLU {c.Intermediate}, RoPE, vocab {c.VocabSize})");

    private static string BiasText(LlamaConfig c) => c.OutputBias ? ", q/k/v/o biases" : c.QueryKeyValueBiases ? ", q/k/v biases" : "";
}

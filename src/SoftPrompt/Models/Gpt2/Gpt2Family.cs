using SoftPrompt.Engines;
using static System.FormattableString;

namespace SoftPrompt.Models.Gpt2;

/// <summary>GPT-2: learned positions, LayerNorm, tanh-GELU MLP, tied LM head (<see cref="ModelFamily.Gpt2"/>).</summary>
internal sealed class Gpt2Family : ModelFamily<Gpt2Config>
{
    public static readonly Gpt2Family Instance = new();

    private Gpt2Family() { }

    public override string Name => "gpt2";
    public override string DisplayName => "GPT-2";
    public override string Summary => "decoder-only";
    /// <summary>GPT-2's demo is the demo directory itself; the others sit in folders inside it.</summary>
    public override string DemoFolder => "";
    private protected override IReadOnlyList<string> ModelTypes => ["gpt2"];
    private protected override IReadOnlyList<string> ArchitecturePrefixes => ["GPT2"];
    private protected override IReadOnlyDictionary<string, Gpt2Config> Shapes => Gpt2Shapes.Named;

    public override IModelConfig LoadConfig(string modelDirectory) => Gpt2Config.Load(Path.Combine(modelDirectory, "config.json"));

    private protected override (Gpt2Config Config, float[] TokenEmbedding) ReadTokenEmbedding(string modelDirectory) => Gpt2Checkpoint.LoadTokenEmbedding<float>(modelDirectory);

    private protected override string Fingerprint(Gpt2Config config, float[] tokenEmbedding) => ModelFingerprint.Of(config, tokenEmbedding);

    /// <summary>The CPU engine computes on host weights; a device engine streams the checkpoint into device memory instead.</summary>
    private protected override LoadedModel Load(string modelDirectory, string device, string origin, EngineOptions? options)
    {
        if (device == "cpu") return EngineFactory.Create(Gpt2Checkpoint.Load<float>(modelDirectory), device, origin, options);
        var (config, checkpoint) = Gpt2Checkpoint.Open(modelDirectory);
        using var _ = checkpoint;
        return EngineFactory.CreateStreamed(config, checkpoint, "wte.weight", device, origin, options, Fingerprint,
            engineOptions => CudaEngines.Create(config, new CheckpointWeightSource<Gpt2Weights<float>>(checkpoint), device, engineOptions));
    }

    private protected override LoadedModel CreateRandom(Gpt2Config shape, string device, string origin, EngineOptions? options) =>
        EngineFactory.Create(Gpt2Weights<float>.CreateRandom(shape, seed: 1), device, origin, options);

    private protected override DeviceMemoryPlan MeasureDeviceMemory(Gpt2Config config, TokenBatch batch, PromptLayout layout, DeviceMemoryPlan.PlanRequest request) =>
        DeviceMemoryPlan.Measure(config, batch, layout, request);

    private protected override IReadOnlyList<(string Label, string Text)> Describe(Gpt2Config c) =>
    [
        ("family", $"gpt2 ({c.Activation}, {(c.TiedEmbeddings ? "tied LM head" : "separate lm_head")}{(c.ScaleAttentionWeights ? "" : ", unscaled attention")}{(c.ScaleAttentionByInverseLayerIndex ? ", attention scaled by 1/(layer+1)" : "")})"),
        ("layers", Invariant($"{c.Layers}")),
        ("d_model", Invariant($"{c.Embedding} ({c.Heads} heads × {c.HeadSize})")),
        ("mlp", Invariant($"{c.Inner}")),
        ("vocab", Invariant($"{c.VocabSize}")),
        ("positions", Invariant($"{c.MaxPositions}")),
    ];

    private protected override string Outline(Gpt2Config c) => Invariant($"GPT-2 ({c.Layers} layers, d={c.Embedding}, vocab {c.VocabSize})");
}

using SoftPrompt.Engines;
using static System.FormattableString;

namespace SoftPrompt.Models.T5;

/// <summary>T5 (v1.0 and v1.1 / LM-adapted, and mT5, which is v1.1's arithmetic): an encoder-decoder with relative position buckets; the prompt goes to the encoder (<see cref="ModelFamily.T5"/>).</summary>
internal sealed class T5Family : ModelFamily<T5Config>
{
    public static readonly T5Family Instance = new();

    private T5Family() { }

    public override string Name => "t5";
    public override string DisplayName => "T5";
    public override string Summary => "encoder-decoder: the prompt goes to the encoder";
    public override bool IsEncoderDecoder => true;
    public override bool InputEndsWithEos => true;
    private protected override IReadOnlyList<string> ModelTypes => ["t5", T5Config.MT5ModelType];
    private protected override IReadOnlyList<string> ArchitecturePrefixes => ["T5", "MT5"];
    private protected override IReadOnlyDictionary<string, T5Config> Shapes => T5Shapes.Named;

    public override IModelConfig LoadConfig(string modelDirectory) => T5Checkpoint.LoadConfig(modelDirectory);

    private protected override (T5Config Config, float[] TokenEmbedding) ReadTokenEmbedding(string modelDirectory) => T5Checkpoint.LoadTokenEmbedding<float>(modelDirectory);

    private protected override string Fingerprint(T5Config config, float[] tokenEmbedding) => ModelFingerprint.Of(config, tokenEmbedding);

    /// <summary>The CPU engine computes on host weights; a device engine streams the checkpoint into device memory instead.</summary>
    private protected override LoadedModel Load(string modelDirectory, string device, string origin, EngineOptions? options)
    {
        if (device == "cpu") return EngineFactory.Create(T5Checkpoint.Load<float>(modelDirectory), device, origin, options);
        var (config, checkpoint) = T5Checkpoint.Open(modelDirectory);
        using var _ = checkpoint;
        return EngineFactory.CreateStreamed(config, checkpoint, T5TensorNames.Shared, device, origin, options, Fingerprint,
            engineOptions => CudaEngines.Create(config, new CheckpointWeightSource<T5Weights<float>>(checkpoint), device, engineOptions));
    }

    private protected override LoadedModel CreateRandom(T5Config shape, string device, string origin, EngineOptions? options) =>
        EngineFactory.Create(T5Weights<float>.CreateRandom(shape, seed: 1), device, origin, options);

    private protected override DeviceMemoryPlan MeasureDeviceMemory(T5Config config, TokenBatch batch, PromptLayout layout, DeviceMemoryPlan.PlanRequest request) =>
        DeviceMemoryPlan.Measure(config, batch, layout, request);

    private protected override IReadOnlyList<(string Label, string Text)> Describe(T5Config c) =>
    [
        ("family", $"t5 ({(c.IsGated ? "v1.1, gated-gelu" : "v1.0, relu")}, {(c.TiedEmbeddings ? "tied LM head" : "separate lm_head")}{(c.RescalesDecoderOutput ? ", rescaled by d_model^-0.5" : "")})"),
        ("layers", Invariant($"{c.Layers} encoder + {c.DecoderLayers} decoder")),
        ("d_model", Invariant($"{c.Embedding} ({c.Heads} heads × d_kv {c.HeadSize})")),
        ("mlp", Invariant($"{c.FeedForwardSize}")),
        ("vocab", Invariant($"{c.VocabSize}")),
        ("positions", Invariant($"relative ({c.RelativeBuckets} buckets, max distance {c.RelativeMaxDistance}); batches up to {c.MaxPositions}")),
    ];

    private protected override string Outline(T5Config c) =>
        Invariant($"T5 ({c.Layers}+{c.DecoderLayers} layers, d={c.Embedding}, vocab {c.VocabSize}; the prompt is prepended to the encoder input)");
}

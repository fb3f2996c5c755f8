using System.Collections.ObjectModel;
using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Models;

/// <summary>
/// An architecture SoftPrompt runs, decided once: from config.json (<see cref="Detect"/>), from the name a prompt file
/// records (<see cref="FromName"/>) or from a loaded config (<see cref="IModelConfig.Family"/>). Everything that differs
/// between families is asked of it: how to open a checkpoint or a bench shape, read the token embeddings, describe the
/// model, and the conventions its inputs and PEFT adapters follow. Nothing else compares family names.
/// </summary>
public abstract class ModelFamily
{
    public static ModelFamily Gpt2 => Gpt2Family.Instance;
    public static ModelFamily T5 => T5Family.Instance;
    /// <summary>Llama-style decoders: RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention (Llama 2/3 and kin; Mistral configs open as Llama within their sliding window).</summary>
    public static ModelFamily Llama => LlamaFamily.Instance;

    /// <summary>GPT-2, T5, Llama. (Built on first use, not in a static initializer: each instance lives in its own class, whose initializer must not wait on this one.)</summary>
    public static IReadOnlyList<ModelFamily> All => all ??= new([Gpt2, T5, Llama]);
    private static ReadOnlyCollection<ModelFamily>? all;

    private protected ModelFamily() { }

    /// <summary>"gpt2", "t5", "llama": written into prompt files and PEFT exports, and read back by <see cref="FromName"/>.</summary>
    public abstract string Name { get; }
    /// <summary>For people: "GPT-2", "T5", "Llama".</summary>
    public abstract string DisplayName { get; }
    /// <summary>What sets the family apart, for option help ("encoder-decoder: the prompt goes to the encoder").</summary>
    public abstract string Summary { get; }
    /// <summary>The prompt and the input go to an encoder and the targets to a separate decoder (T5), instead of one causal sequence [prompt, input, targets].</summary>
    public virtual bool IsEncoderDecoder => false;
    /// <summary>PEFT's task_type: SEQ_2_SEQ_LM for encoder-decoder models, CAUSAL_LM for the rest.</summary>
    public string PeftTaskType => IsEncoderDecoder ? "SEQ_2_SEQ_LM" : "CAUSAL_LM";
    /// <summary>
    /// The input starts with BOS when the checkpoint's tokenizer files do not say (Llama's tokenizer.model alone: LlamaTokenizer
    /// adds it); what they declare comes first (<see cref="Text.BosConvention"/>).
    /// </summary>
    public virtual bool InputStartsWithBos => false;
    /// <summary>Hugging Face's tokenizer convention: the input ends with EOS (T5's encoder input).</summary>
    public virtual bool InputEndsWithEos => false;
    /// <summary>The bundled demo's folder inside the demo directory ("" for GPT-2's, which is the demo directory itself).</summary>
    public virtual string DemoFolder => Name;

    /// <summary>Named shapes for benchmarks, opened with random weights (<see cref="OpenShape"/>).</summary>
    public abstract IReadOnlyList<string> ShapeNames { get; }
    /// <summary>The config of the shape called <paramref name="name"/>; null when this family has none by that name.</summary>
    public abstract IModelConfig? Shape(string name);

    /// <summary>config.json of a checkpoint directory (no weights read).</summary>
    public abstract IModelConfig LoadConfig(string modelDirectory);
    /// <summary>The input token embeddings (where prompts live), the config and the fingerprint, without the rest of the weights.</summary>
    public abstract TokenEmbeddingTable LoadTokenEmbedding(string modelDirectory);
    /// <summary>The <see cref="ModelFingerprint"/> of a model of this family: its architecture and its token embeddings [V, d].</summary>
    public abstract string Fingerprint(IModelConfig config, float[] tokenEmbedding);
    /// <summary>What the family's CUDA engine allocates to run <paramref name="batch"/> with prompts laid out as <paramref name="layout"/>, measured without a device.</summary>
    public abstract DeviceMemoryPlan MeasureDeviceMemory(IModelConfig config, TokenBatch batch, PromptLayout layout, DeviceMemoryPlan.PlanRequest request);

    /// <summary>
    /// Loads the checkpoint as float32 on <paramref name="device"/> (checked first: a refusal should not cost a load): whole
    /// into host memory for the CPU engine, tensor by tensor from the mapping into device memory for a device engine.
    /// </summary>
    public LoadedModel Open(string modelDirectory, string device, EngineOptions? options = null)
    {
        EngineFactory.CheckDevice(device);
        return Load(modelDirectory, device, Path.GetFullPath(modelDirectory), options);
    }

    /// <summary>The bench shape <paramref name="name"/> with random weights (seed 1) on <paramref name="device"/>; the model's directory is the shape's name.</summary>
    public LoadedModel OpenShape(string name, string device, EngineOptions? options = null)
    {
        var shape = Shape(name) ?? throw new ArgumentException($"{DisplayName} has no shape '{name}'; choose one of: {string.Join(", ", ShapeNames)}.");
        EngineFactory.CheckDevice(device); // before building gigabytes of random weights
        EngineFactory.CheckPrecision(device, options);
        // The random weights are built in host memory as fp32 whatever the device: refuse what the machine cannot hold
        // instead of being killed by the kernel halfway through.
        long bytes = shape.ParameterCount * sizeof(float), available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes > available)
            throw new ArgumentException($"Shape {name} needs {bytes / (1L << 30):F0} GiB of host memory for its fp32 weights; this machine has {available / (1L << 30):F0} GiB. Pick a smaller `shape`.");
        return CreateRandom(shape, device, name, options);
    }

    /// <summary>The architecture lines of `softprompt info` after "model": family, layers, d_model, mlp, vocab, positions.</summary>
    public abstract IReadOnlyList<(string Label, string Text)> Describe(IModelConfig config);
    /// <summary>One line: the family and the sizes that matter to it, e.g. "GPT-2 (3 layers, d=64, vocab 23)".</summary>
    public abstract string Outline(IModelConfig config);

    public override string ToString() => Name;

    /// <summary>config.json's model_type values that name this family.</summary>
    private protected abstract IReadOnlyList<string> ModelTypes { get; }
    /// <summary>How config.json's architectures of this family start ("T5" for "T5ForConditionalGeneration"), for old exports without a model_type.</summary>
    private protected abstract IReadOnlyList<string> ArchitecturePrefixes { get; }
    private protected abstract LoadedModel Load(string modelDirectory, string device, string origin, EngineOptions? options);
    private protected abstract LoadedModel CreateRandom(IModelConfig shape, string device, string origin, EngineOptions? options);

    /// <summary>The family called <paramref name="name"/> (<see cref="Name"/>, as prompt files record it); anything else is an <see cref="ArgumentException"/> listing the families.</summary>
    public static ModelFamily FromName(string name) =>
        All.FirstOrDefault(f => f.Name == name) ?? throw new ArgumentException($"Unknown model family '{name}'; {Supported}.");

    /// <summary>The family with a bench shape called <paramref name="shapeName"/>, or null.</summary>
    public static ModelFamily? OfShape(string shapeName) => All.FirstOrDefault(f => f.Shape(shapeName) is not null);

    /// <summary>
    /// The family from config.json's <c>model_type</c>, or from <c>architectures</c> (e.g. "T5ForConditionalGeneration")
    /// when an old export has no model_type. Anything else is a <see cref="CheckpointException"/> naming what was found.
    /// </summary>
    public static ModelFamily Detect(string modelDirectory)
    {
        string configPath = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(configPath))
            throw new CheckpointException($"{modelDirectory}: no config.json; `model` must be a Hugging Face checkpoint directory.");
        var root = ConfigJson.Read(configPath, "model").Root;
        if (root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String)
        {
            string modelType = type.GetString()!;
            return All.FirstOrDefault(f => f.ModelTypes.Contains(modelType))
                ?? throw new CheckpointException($"{configPath}: model_type '{modelType}' is not supported; {Supported}.");
        }
        var architectures = new List<string>();
        if (root.TryGetProperty("architectures", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in list.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) continue;
                string name = item.GetString()!;
                if (All.FirstOrDefault(f => f.ArchitecturePrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal))) is { } family) return family;
                architectures.Add(name);
            }
        }
        string found = architectures.Count == 0 ? "no model_type and no architectures" : $"no model_type and architectures [{string.Join(", ", architectures)}]";
        throw new CheckpointException(
            $"{configPath}: {found}, so the model family is unknown; {Supported} (add \"model_type\": {Listed(All.Select(f => $"\"{f.Name}\""), "or")} if it is one of them).");
    }

    /// <summary>"SoftPrompt runs gpt2, t5 and llama models".</summary>
    private static string Supported => $"SoftPrompt runs {Listed(All.Select(f => f.Name), "and")} models";

    private static string Listed(IEnumerable<string> items, string conjunction)
    {
        var list = items.ToList();
        return list.Count < 2 ? string.Concat(list) : $"{string.Join(", ", list[..^1])} {conjunction} {list[^1]}";
    }
}

/// <summary>The typed half of a family: its config record, so the per-family classes read their own fields without casts.</summary>
internal abstract class ModelFamily<TConfig> : ModelFamily where TConfig : class, IModelConfig
{
    private protected abstract IReadOnlyDictionary<string, TConfig> Shapes { get; }
    public sealed override IReadOnlyList<string> ShapeNames => [.. Shapes.Keys];
    public sealed override IModelConfig? Shape(string name) => Shapes.GetValueOrDefault(name);
    public sealed override string Fingerprint(IModelConfig config, float[] tokenEmbedding) => Fingerprint(Typed(config), tokenEmbedding);

    public sealed override TokenEmbeddingTable LoadTokenEmbedding(string modelDirectory)
    {
        var (config, table) = ReadTokenEmbedding(modelDirectory);
        return new TokenEmbeddingTable(config, table, Fingerprint(config, table));
    }

    public sealed override IReadOnlyList<(string Label, string Text)> Describe(IModelConfig config) => Describe(Typed(config));
    public sealed override string Outline(IModelConfig config) => Outline(Typed(config));
    public sealed override DeviceMemoryPlan MeasureDeviceMemory(IModelConfig config, TokenBatch batch, PromptLayout layout, DeviceMemoryPlan.PlanRequest request) =>
        MeasureDeviceMemory(Typed(config), batch, layout, request);
    private protected sealed override LoadedModel CreateRandom(IModelConfig shape, string device, string origin, EngineOptions? options) => CreateRandom(Typed(shape), device, origin, options);

    private protected abstract (TConfig Config, float[] TokenEmbedding) ReadTokenEmbedding(string modelDirectory);
    private protected abstract string Fingerprint(TConfig config, float[] tokenEmbedding);
    private protected abstract IReadOnlyList<(string Label, string Text)> Describe(TConfig config);
    private protected abstract string Outline(TConfig config);
    private protected abstract LoadedModel CreateRandom(TConfig shape, string device, string origin, EngineOptions? options);
    private protected abstract DeviceMemoryPlan MeasureDeviceMemory(TConfig config, TokenBatch batch, PromptLayout layout, DeviceMemoryPlan.PlanRequest request);

    private TConfig Typed(IModelConfig config) =>
        config as TConfig ?? throw new ArgumentException($"A {config.Family.DisplayName} config given to the {DisplayName} family.", nameof(config));
}

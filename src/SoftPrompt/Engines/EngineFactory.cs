using SoftPrompt.Checkpoints;
using SoftPrompt.Models;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>A frozen model opened on a device, with what prompt files need to know about it.</summary>
public sealed record LoadedModel(IPromptEngine Engine, IModelConfig Config, string Fingerprint, string Directory, float[] TokenEmbedding) : IDisposable
{
    /// <summary>The model's family; its name is recorded in prompt files.</summary>
    public ModelFamily Family => Config.Family;

    public void Dispose() => Engine.Dispose();
}

/// <summary>
/// The arithmetic of a device engine's GEMMs. <see cref="Fp32"/>: exact fp32 (results match the CPU reference).
/// <see cref="Tf32"/>: cuBLAS may use TF32 tensor cores for the fp32 GEMMs (about 8× the fp32 throughput on Ampere/Hopper,
/// 10-bit mantissa products). <see cref="Bf16"/>: the frozen block weights and the LM head are stored in bf16 (rounded to
/// nearest even; a tied head as a bf16 copy beside the fp32 embedding) and their GEMMs run on bf16 tensor cores with fp32
/// sums; everything else (activations between ops, norms, softmax, loss,
/// prompt and optimizer) stays fp32. The CPU engines are fp32/fp64 references and refuse bf16.
/// </summary>
public enum Precision { Fp32, Tf32, Bf16 }

/// <summary>
/// Whether a device engine keeps every layer's activations for the reverse pass or only each layer's input, recomputing
/// the layer's forward inside the reverse pass (one more forward per step, about a third more work, for activation memory
/// of one layer plus the layer inputs). <see cref="Auto"/>: recompute only when the full plan does not fit the device's
/// free memory. The CPU engines always keep everything.
/// </summary>
public enum Recomputation { Auto, Off, PerLayer }

/// <summary>How an engine computes (<see cref="Engines.Precision"/>) and what it keeps for the reverse pass (<see cref="Engines.Recomputation"/>).</summary>
public sealed record EngineOptions(Precision Precision = Precision.Fp32, Recomputation Recomputation = Recomputation.Auto)
{
    public static readonly EngineOptions Default = new();

    /// <summary>The TF32 switch of earlier versions: <c>new EngineOptions(AllowTf32: true)</c> is <see cref="Precision.Tf32"/>.</summary>
    public EngineOptions(bool AllowTf32) : this(AllowTf32 ? Precision.Tf32 : Precision.Fp32) { }

    public bool AllowTf32 => Precision == Precision.Tf32;
}

/// <summary>Opens a Hugging Face checkpoint directory (or weights built in memory) on the requested device.</summary>
public static class EngineFactory
{
    public static readonly string[] Devices = ["cpu", "cuda", "cuda-emulated"];

    /// <summary>Detects the family from config.json (<see cref="ModelFamily.Detect"/>) and loads the weights as float32 (<see cref="ModelFamily.Open"/>).</summary>
    public static LoadedModel Open(string modelDirectory, string device, EngineOptions? options = null)
        => ModelFamily.Detect(modelDirectory).Open(modelDirectory, device, options);

    public static LoadedModel Create(Gpt2Weights<float> weights, string device, string origin, EngineOptions? options = null) =>
        Create(weights.Config, weights.TokenEmbedding, ModelFingerprint.Of(weights), device, origin, options,
            () => new CpuGpt2Engine<float>(weights), engineOptions => CudaEngines.Create(weights, device, engineOptions));

    public static LoadedModel Create(T5Weights<float> weights, string device, string origin, EngineOptions? options = null) =>
        Create(weights.Config, weights.TokenEmbedding, ModelFingerprint.Of(weights), device, origin, options,
            () => new CpuT5Engine<float>(weights), engineOptions => CudaEngines.Create(weights, device, engineOptions));

    public static LoadedModel Create(LlamaWeights<float> weights, string device, string origin, EngineOptions? options = null) =>
        Create(weights.Config, weights.TokenEmbedding, ModelFingerprint.Of(weights), device, origin, options,
            () => new CpuLlamaEngine<float>(weights), engineOptions => CudaEngines.Create(weights, device, engineOptions));

    /// <summary>Weights already in host memory: the CPU engine computes on them, a device engine uploads them.</summary>
    private static LoadedModel Create(IModelConfig config, float[] tokenEmbedding, string fingerprint, string device, string origin, EngineOptions? options,
        Func<IPromptEngine> cpuEngine, Func<EngineOptions, IPromptEngine> deviceEngine)
    {
        CheckDevice(device);
        CheckPrecision(device, options);
        var engine = device == "cpu" ? cpuEngine() : deviceEngine(options ?? EngineOptions.Default);
        return new LoadedModel(engine, config, fingerprint, origin, tokenEmbedding);
    }

    /// <summary>
    /// A checkpoint opened on a device engine without a host copy of the model: every tensor streams from the mapping into
    /// its device tensor (<see cref="CheckedCheckpoint.Stream"/>); only the token embedding table, which the loaded model keeps
    /// for prompt initialisation, nearest tokens and the fingerprint, is read to the host.
    /// </summary>
    internal static LoadedModel CreateStreamed<TConfig>(TConfig config, CheckedCheckpoint checkpoint, string tokenEmbeddingName, string device, string origin,
        EngineOptions? options, Func<TConfig, float[], string> fingerprint, Func<EngineOptions, IPromptEngine> engine) where TConfig : IModelConfig
    {
        CheckPrecision(device, options);
        var tokenEmbedding = checkpoint.Read<float>(tokenEmbeddingName, config.VocabSize, config.Embedding);
        return new LoadedModel(engine(options ?? EngineOptions.Default), config, fingerprint(config, tokenEmbedding), origin, tokenEmbedding);
    }

    /// <summary>cuda when a usable GPU is present, else cpu.</summary>
    public static string DefaultDevice => CudaEngines.GpuAvailable ? "cuda" : "cpu";

    /// <summary>Throws unless a model can run on <paramref name="device"/> (an unknown name, or cuda without a usable GPU): callers check before loading or building weights, as a refusal should not cost a load.</summary>
    public static void CheckDevice(string device)
    {
        if (device is not ("cpu" or "cuda" or "cuda-emulated")) throw UnknownDevice(device);
        CudaEngines.Check(device);
    }

    /// <summary>Throws when bf16 is asked of a CPU engine: those are the fp32/fp64 references.</summary>
    public static void CheckPrecision(string device, EngineOptions? options)
    {
        if (options?.Precision == Precision.Bf16 && device == "cpu")
            throw new ArgumentException("`precision` bf16 needs a device engine (`device` cuda or cuda-emulated); the CPU engines are the fp32/fp64 references.");
    }

    private static ArgumentException UnknownDevice(string device) =>
        new($"Unknown device '{device}'; choose one of: {string.Join(", ", Devices)}.");
}

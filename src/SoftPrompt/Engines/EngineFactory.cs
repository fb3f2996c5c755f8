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

/// <summary>How an engine computes. <see cref="AllowTf32"/>: let cuBLAS use TF32 tensor cores for the fp32 GEMMs (about 8× the fp32 throughput on Ampere/Hopper, 10-bit mantissa products; off by default so results match the CPU reference).</summary>
public sealed record EngineOptions(bool AllowTf32 = false)
{
    public static readonly EngineOptions Default = new();
}

/// <summary>Opens a Hugging Face checkpoint directory (or weights built in memory) on the requested device.</summary>
public static class EngineFactory
{
    public static readonly string[] Devices = ["cpu", "cuda", "cuda-emulated"];

    /// <summary>Detects the family from config.json (<see cref="ModelFamily.Detect"/>) and loads the weights as float32 (<see cref="ModelFamily.Open"/>).</summary>
    public static LoadedModel Open(string modelDirectory, string device, EngineOptions? options = null)
        => ModelFamily.Detect(modelDirectory).Open(modelDirectory, device, options);

    public static LoadedModel Create(Gpt2Weights<float> weights, string device, string origin, EngineOptions? options = null)
    {
        string fingerprint = ModelFingerprint.Of(weights);
        IPromptEngine engine = device switch
        {
            "cpu" => new CpuGpt2Engine<float>(weights),
            "cuda" or "cuda-emulated" => CudaEngines.Create(weights, device, options ?? EngineOptions.Default),
            _ => throw UnknownDevice(device),
        };
        return new LoadedModel(engine, weights.Config, fingerprint, origin, weights.TokenEmbedding);
    }

    public static LoadedModel Create(T5Weights<float> weights, string device, string origin, EngineOptions? options = null)
    {
        CheckDevice(device);
        IPromptEngine engine = device switch
        {
            "cpu" => new CpuT5Engine<float>(weights),
            _ => CudaEngines.Create(weights, device, options ?? EngineOptions.Default),
        };
        return new LoadedModel(engine, weights.Config, ModelFingerprint.Of(weights), origin, weights.TokenEmbedding);
    }

    public static LoadedModel Create(LlamaWeights<float> weights, string device, string origin, EngineOptions? options = null)
    {
        CheckDevice(device);
        IPromptEngine engine = device switch
        {
            "cpu" => new CpuLlamaEngine<float>(weights),
            _ => CudaEngines.Create(weights, device, options ?? EngineOptions.Default),
        };
        return new LoadedModel(engine, weights.Config, ModelFingerprint.Of(weights), origin, weights.TokenEmbedding);
    }

    /// <summary>cuda when a usable GPU is present, else cpu.</summary>
    public static string DefaultDevice => CudaEngines.GpuAvailable ? "cuda" : "cpu";

    /// <summary>Throws unless a model can run on <paramref name="device"/> (an unknown name, or cuda without a usable GPU): callers check before loading or building weights, as a refusal should not cost a load.</summary>
    public static void CheckDevice(string device)
    {
        if (device is not ("cpu" or "cuda" or "cuda-emulated")) throw UnknownDevice(device);
        CudaEngines.Check(device);
    }

    private static ArgumentException UnknownDevice(string device) =>
        new($"Unknown device '{device}'; choose one of: {string.Join(", ", Devices)}.");
}

using SoftPrompt.Checkpoints;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Tuning;

namespace SoftPrompt.Engines;

/// <summary>A frozen model opened on a device, with what prompt files need to know about it.</summary>
public sealed record LoadedModel(IPromptEngine Engine, string Family, Gpt2Config Config, string Fingerprint, string Directory, float[] TokenEmbedding) : IDisposable
{
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

    public static LoadedModel Open(string modelDirectory, string device, EngineOptions? options = null)
    {
        string configPath = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(configPath))
            throw new CheckpointException($"{modelDirectory}: no config.json; point --model at a Hugging Face checkpoint directory.");
        var weights = Gpt2Checkpoint.Load<float>(modelDirectory);
        return Create(weights, device, Path.GetFullPath(modelDirectory), options);
    }

    public static LoadedModel Create(Gpt2Weights<float> weights, string device, string origin, EngineOptions? options = null)
    {
        string fingerprint = ModelFingerprint.Of(weights);
        IPromptEngine engine = device switch
        {
            "cpu" => new CpuGpt2Engine<float>(weights),
            "cuda" or "cuda-emulated" => CudaEngines.Create(weights, device, options ?? EngineOptions.Default),
            _ => throw new ArgumentException($"Unknown device '{device}'; choose one of: {string.Join(", ", Devices)}."),
        };
        return new LoadedModel(engine, "gpt2", weights.Config, fingerprint, origin, weights.TokenEmbedding);
    }

    /// <summary>cuda when a usable GPU is present, else cpu.</summary>
    public static string DefaultDevice => CudaEngines.GpuAvailable ? "cuda" : "cpu";
}

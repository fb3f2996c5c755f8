using SoftPrompt.Checkpoints;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Tuning;

namespace SoftPrompt.Engines;

/// <summary>A frozen model opened on a device, with what prompt files need to know about it.</summary>
public sealed record LoadedModel(IPromptEngine Engine, string Family, Gpt2Config Config, string Fingerprint, string Directory, float[] TokenEmbedding) : IDisposable
{
    public void Dispose() => Engine.Dispose();
}

/// <summary>Opens a Hugging Face checkpoint directory (or weights built in memory) on the requested device.</summary>
public static class EngineFactory
{
    public static readonly string[] Devices = ["cpu", "cuda", "cuda-emulated"];

    public static LoadedModel Open(string modelDirectory, string device)
    {
        string configPath = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(configPath))
            throw new CheckpointException($"{modelDirectory}: no config.json; point --model at a Hugging Face checkpoint directory.");
        var weights = Gpt2Checkpoint.Load<float>(modelDirectory);
        return Create(weights, device, Path.GetFullPath(modelDirectory));
    }

    public static LoadedModel Create(Gpt2Weights<float> weights, string device, string origin)
    {
        string fingerprint = ModelFingerprint.Of(weights);
        IPromptEngine engine = device switch
        {
            "cpu" => new CpuGpt2Engine<float>(weights),
            "cuda" or "cuda-emulated" => CudaEngines.Create(weights, device),
            _ => throw new ArgumentException($"Unknown device '{device}'; choose one of: {string.Join(", ", Devices)}."),
        };
        return new LoadedModel(engine, "gpt2", weights.Config, fingerprint, origin, weights.TokenEmbedding);
    }

    /// <summary>cuda when a usable GPU is present, else cpu.</summary>
    public static string DefaultDevice => CudaEngines.GpuAvailable ? "cuda" : "cpu";
}

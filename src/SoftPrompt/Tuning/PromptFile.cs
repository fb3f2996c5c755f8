using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>
/// A trained prompt on disk: safetensors with tensor "prompt_embeddings" [P, d] (float32) and metadata
/// naming the model it belongs to. Written atomically (temp file + rename).
/// </summary>
public sealed record PromptFile(float[] Values, int Length, int Width, IReadOnlyDictionary<string, string> Metadata)
{
    public const string TensorName = "prompt_embeddings";
    public const string FingerprintKey = "model_fingerprint";
    public const string FamilyKey = "model_family";

    public void Save(string path)
    {
        FinitePrompt.Require(Values, Width, path, TensorName, writing: true);
        var writer = new SafeTensorWriter();
        foreach (var (key, value) in Metadata) writer.Metadata[key] = value;
        writer.Metadata["format"] = "softprompt-prompt/1";
        writer.Metadata["prompt_length"] = Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        writer.Metadata["d_model"] = Width.ToString(System.Globalization.CultureInfo.InvariantCulture);
        writer.Add(TensorName, Values, [Length, Width]);
        writer.Save(path);
    }

    public static PromptFile Load(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"{path}: prompt file not found.");
        using var file = SafeTensorFile.Open(path);
        if (!file.TryGetInfo(TensorName, out var info))
            throw new CheckpointException($"{path}: no tensor '{TensorName}'; a SoftPrompt prompt file holds {TensorName} [P, d]. For a PEFT adapter use `softprompt import`.");
        if (info.Shape.Length == 3)
            throw new CheckpointException($"{path}: tensor '{TensorName}' has shape {info.ShapeText}: {info.Shape[0]} prompts of an ensemble run's checkpoint, not one prompt; " +
                "use the run's OUT.k{k}.safetensors files, or resume the ensemble with `TrainOptions.Ensemble`.");
        if (info.Shape.Length != 2)
            throw new CheckpointException($"{path}: tensor '{TensorName}' has shape {info.ShapeText}, expected [P, d].");
        RequireNonEmpty(info, path, "[P, d]");
        var values = file.Read<float>(TensorName);
        FinitePrompt.Require(values, (int)info.Shape[1], path, TensorName, writing: false);
        return new PromptFile(values, (int)info.Shape[0], (int)info.Shape[1], new Dictionary<string, string>(file.Metadata));
    }

    /// <summary>A prompt has at least one vector of at least one channel, each count an int (a crafted [0, 2^40] would cast to width 0).</summary>
    internal static void RequireNonEmpty(TensorInfo info, string path, string expected)
    {
        if (info.Shape[0] is < 1 or > int.MaxValue || info.Shape[1] is < 1 or > int.MaxValue)
            throw new CheckpointException($"{path}: tensor '{TensorName}' has shape {info.ShapeText}; a prompt {expected} needs at least one vector and one channel (at most {int.MaxValue} each).");
    }

    /// <summary>Throws unless this prompt fits a model of width <paramref name="width"/> and the given fingerprint (when both sides have one).</summary>
    public void CheckBelongsTo(string path, int width, string? fingerprint)
    {
        if (Width != width)
            throw new CheckpointException($"{path}: prompt vectors are {Width} wide but the model's embeddings are {width}; this prompt was made for another model.");
        if (fingerprint is not null && Metadata.TryGetValue(FingerprintKey, out var own) && own != fingerprint)
            throw new CheckpointException($"{path}: prompt was trained for model {own}" +
                (Metadata.TryGetValue("model_path", out var m) ? $" ({m})" : "") +
                $", not this model ({fingerprint}). Use the checkpoint it was trained with.");
    }
}

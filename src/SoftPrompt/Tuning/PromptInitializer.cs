using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>Initial prompt values: "random" (uniform ±0.5, the paper's random-uniform) or a prompt file.</summary>
public static class PromptInitializer
{
    public const int DefaultLength = 20;

    public static float[] Create(string init, int? requestedLength, LoadedModel model, int seed, out int length)
    {
        int width = model.Config.Embedding;
        if (init == "random")
        {
            length = requestedLength ?? DefaultLength;
            if (length <= 0) throw new ArgumentException($"--prompt-length must be positive, got {length}.");
            var random = new Random(seed);
            var values = new float[length * width];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() - 0.5);
            return values;
        }
        var file = PromptFile.Load(init);
        file.CheckBelongsTo(init, width, model.Fingerprint);
        length = requestedLength ?? file.Length;
        if (length != file.Length)
            throw new ArgumentException($"{init}: the init prompt has {file.Length} vectors but --prompt-length is {length}; omit --prompt-length or use a matching file.");
        return file.Values;
    }
}

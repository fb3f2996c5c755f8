using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models;

/// <summary>Which architecture a Hugging Face directory holds, from config.json, so the right loader and engine open it.</summary>
public static class ModelFamily
{
    public const string Gpt2 = "gpt2";
    public const string T5 = "t5";
    /// <summary>Llama-style decoders: RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention (Llama 2/3 and kin).</summary>
    public const string Llama = "llama";
    /// <summary>Mistral's config names a Llama-style model with a sliding attention window; SoftPrompt runs it as "llama" within the window.</summary>
    private const string Mistral = "mistral";

    /// <summary>
    /// "gpt2", "t5" or "llama", from config.json's <c>model_type</c>, or from <c>architectures</c> (e.g. "T5ForConditionalGeneration")
    /// when an old export has no model_type. Anything else is a <see cref="CheckpointException"/> naming what was found.
    /// </summary>
    public static string Detect(string modelDirectory)
    {
        string configPath = Path.Combine(modelDirectory, "config.json");
        if (!File.Exists(configPath))
            throw new CheckpointException($"{modelDirectory}: no config.json; point --model at a Hugging Face checkpoint directory.");
        JsonElement root;
        try
        {
            using var stream = File.OpenRead(configPath);
            root = JsonDocument.Parse(stream).RootElement.Clone();
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{configPath}: cannot read config.json ({e.Message}).", e);
        }
        if (root.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{configPath}: config.json must hold a JSON object.");
        const string supported = "SoftPrompt runs gpt2, t5 and llama models";
        if (root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String)
        {
            return type.GetString() switch
            {
                Gpt2 => Gpt2,
                T5 => T5,
                Llama or Mistral => Llama,
                var other => throw new CheckpointException($"{configPath}: model_type '{other}' is not supported; {supported}."),
            };
        }
        var architectures = new List<string>();
        if (root.TryGetProperty("architectures", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in list.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) continue;
                string name = item.GetString()!;
                if (name.StartsWith("GPT2", StringComparison.Ordinal)) return Gpt2;
                if (name.StartsWith("T5", StringComparison.Ordinal)) return T5;
                if (name.StartsWith("Llama", StringComparison.Ordinal) || name.StartsWith("Mistral", StringComparison.Ordinal)) return Llama;
                architectures.Add(name);
            }
        }
        string found = architectures.Count == 0 ? "no model_type and no architectures" : $"no model_type and architectures [{string.Join(", ", architectures)}]";
        throw new CheckpointException($"{configPath}: {found}, so the model family is unknown; {supported} (add \"model_type\": \"gpt2\", \"t5\" or \"llama\" if it is one of them).");
    }
}

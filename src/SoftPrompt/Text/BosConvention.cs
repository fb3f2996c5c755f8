using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Models;

namespace SoftPrompt.Text;

/// <summary>
/// Whether Hugging Face's tokenizer for a checkpoint starts every input with BOS, as the checkpoint declares it, so text
/// rows are tokenized as the model saw them in training. Llama 2 and 3 add BOS, Qwen2 has none, yet all open in the
/// Llama family: the family cannot decide it. The first source that says anything wins:
/// <list type="number">
/// <item>tokenizer_config.json's <c>add_bos_token</c> (Llama 2: true; Qwen2.5: false). A fast tokenizer rebuilds its
/// post-processor from it, so it overrides tokenizer.json.</item>
/// <item>tokenizer.json's <c>post_processor</c>: a TemplateProcessing (alone or inside a Sequence) whose single-sequence
/// template starts with a special token adds it (Llama 3's &lt;|begin_of_text|&gt;); any other post-processor, or none,
/// adds nothing (Qwen2's ByteLevel, GPT-2's null).</item>
/// <item>the family's convention (<see cref="ModelFamily.InputStartsWithBos"/>), for directories with neither, such as a
/// Llama tokenizer.model alone, which LlamaTokenizer reads with add_bos_token true.</item>
/// </list>
/// </summary>
public static class BosConvention
{
    public static bool StartsWithBos(string modelDirectory, ModelFamily family) =>
        FromTokenizerConfig(Path.Combine(modelDirectory, "tokenizer_config.json"))
        ?? FromPostProcessor(Path.Combine(modelDirectory, "tokenizer.json"))
        ?? family.InputStartsWithBos;

    /// <summary>add_bos_token, or null when the file or the key is absent.</summary>
    private static bool? FromTokenizerConfig(string path)
    {
        if (!File.Exists(path)) return null;
        using var document = Parse(path);
        if (!document.RootElement.TryGetProperty("add_bos_token", out var flag) || flag.ValueKind == JsonValueKind.Null) return null;
        return flag.ValueKind is JsonValueKind.True or JsonValueKind.False ? flag.GetBoolean()
            : throw new DataException($"{path}: \"add_bos_token\" must be true or false.");
    }

    /// <summary>Whether the post-processor puts a special token first; null when there is no tokenizer.json.</summary>
    private static bool? FromPostProcessor(string path)
    {
        if (!File.Exists(path)) return null;
        using var document = Parse(path);
        return document.RootElement.TryGetProperty("post_processor", out var processor) && StartsWithSpecialToken(processor);
    }

    private static bool StartsWithSpecialToken(JsonElement processor)
    {
        if (processor.ValueKind != JsonValueKind.Object || !processor.TryGetProperty("type", out var type)) return false;
        switch (type.GetString())
        {
            case "TemplateProcessing":
                return processor.TryGetProperty("single", out var single) && single.ValueKind == JsonValueKind.Array
                    && single.GetArrayLength() > 0 && single[0].TryGetProperty("SpecialToken", out _);
            case "Sequence":
                return processor.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array
                    && list.EnumerateArray().Any(StartsWithSpecialToken);
            default:
                return false;
        }
    }

    private static JsonDocument Parse(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            var document = StrictJson.Parse(stream);
            if (document.RootElement.ValueKind == JsonValueKind.Object) return document;
            document.Dispose();
            throw new DataException($"{path}: expected a JSON object.");
        }
        catch (JsonException e) { throw new DataException($"{path}: not valid JSON ({e.Message}); fix or remove the file.", e); }
    }
}

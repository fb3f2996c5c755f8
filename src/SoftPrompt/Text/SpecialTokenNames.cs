using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Text;

/// <summary>A special token's text and the file that declared it (for error messages).</summary>
public sealed record DeclaredToken(string Content, string DeclaredIn);

/// <summary>
/// The BOS/EOS/PAD tokens a checkpoint declares in tokenizer_config.json or special_tokens_map.json (for each
/// role the first file that names it wins). A role no file names is null; each tokenizer then falls back to its
/// format's own convention.
/// </summary>
public sealed record SpecialTokenNames(DeclaredToken? Bos, DeclaredToken? Eos, DeclaredToken? Pad)
{
    public static readonly SpecialTokenNames None = new(null, null, null);

    private static readonly string[] Files = ["tokenizer_config.json", "special_tokens_map.json"];

    public static SpecialTokenNames Read(string modelDir)
    {
        DeclaredToken? bos = null, eos = null, pad = null;
        foreach (string name in Files)
        {
            string path = Path.Combine(modelDir, name);
            if (!File.Exists(path)) continue;
            JsonElement root;
            try { root = StrictJson.Parse(File.ReadAllBytes(path)).RootElement; }
            catch (JsonException e) { throw new DataException($"{path}: not valid JSON ({e.Message}); fix or remove the file.", e); }
            if (root.ValueKind != JsonValueKind.Object) throw new DataException($"{path}: expected a JSON object.");
            bos ??= Role(root, "bos_token", path);
            eos ??= Role(root, "eos_token", path);
            pad ??= Role(root, "pad_token", path);
        }
        return new SpecialTokenNames(bos, eos, pad);
    }

    /// <summary>The id of a declared token, null when undeclared; a declared token missing from the vocabulary is an error.</summary>
    public static int? Resolve(DeclaredToken? token, string role, Func<string, int?> lookup)
    {
        if (token is null) return null;
        return lookup(token.Content) ?? throw new DataException(
            $"{token.DeclaredIn}: {role} {VocabFiles.Quote(token.Content)} is not in the tokenizer's vocabulary; fix the file or remove the entry.");
    }

    // A role is written either as a plain string or as an AddedToken object {"content": "...", ...}.
    private static DeclaredToken? Role(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var value)) return null;
        string? content = value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw new DataException($"{path}: \"{key}\" must be a string or an object with \"content\"."),
        };
        return content is null ? null : new DeclaredToken(content, path);
    }
}

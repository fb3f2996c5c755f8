using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Models;

/// <summary>
/// A Hugging Face config.json read once, with typed field access whose errors name the file, the field and the
/// family that needs it. Null counts as absent (transformers writes null for "use the default").
/// </summary>
public sealed class ConfigJson
{
    public string Path { get; }
    public JsonElement Root { get; }
    private readonly string _family;

    private ConfigJson(string path, JsonElement root, string family)
    {
        Path = path;
        Root = root;
        _family = family;
    }

    /// <param name="family">Who needs the fields, for messages ("T5 configs need it").</param>
    public static ConfigJson Read(string path, string family)
    {
        JsonElement root;
        try
        {
            using var stream = File.OpenRead(path);
            root = StrictJson.Parse(stream).RootElement.Clone();
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot read config.json ({e.Message}).", e);
        }
        if (root.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: config.json must hold a JSON object.");
        return new ConfigJson(path, root, family);
    }

    /// <summary>Refuses the first size that is not positive, by its config.json name.</summary>
    public static void RequirePositive(string source, params ReadOnlySpan<(string Name, int Value)> sizes)
    {
        foreach (var (name, value) in sizes)
            if (value <= 0) throw new CheckpointException($"{source}: {name} is {value}; it must be positive.");
    }

    public bool Has(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public int Int(string name, int? fallback = null)
    {
        if (Root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int value)) return value;
        if (fallback is { } f && !Has(name)) return f;
        throw new CheckpointException($"{Path}: field '{name}' is {(Has(name) ? "not an integer" : "missing")}; {_family} configs need it.");
    }

    public int? OptionalInt(string name) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id) ? id : null;

    public double Number(string name, double fallback) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble()
        : !Has(name) ? fallback
        : throw new CheckpointException($"{Path}: field '{name}' is not a number.");

    public string String(string name, string fallback) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
        : !Has(name) ? fallback
        : throw new CheckpointException($"{Path}: field '{name}' is not a string.");

    public bool Bool(string name, bool fallback) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
        : !Has(name) ? fallback
        : throw new CheckpointException($"{Path}: field '{name}' is not true or false.");
}

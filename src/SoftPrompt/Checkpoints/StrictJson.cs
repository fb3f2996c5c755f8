using System.Text.Json;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// JsonDocument.Parse plus one check it leaves to the first read: every string and property name must be valid
/// Unicode. Invalid UTF-8 bytes inside a string (or an unpaired surrogate escape such as "\ud800") parse, but reading
/// them throws a bare InvalidOperationException ("Cannot transcode invalid UTF-8 JSON text to UTF-16 string") that
/// names no file (found by `./build.sh fuzz` in config.json, safetensors headers, tokenizer.json and adapter_config.json).
/// Here it is a <see cref="JsonException"/>, which every caller already reports as "FILE: not valid JSON (…)".
/// </summary>
internal static class StrictJson
{
    public static JsonDocument Parse(byte[] utf8) => Checked(JsonDocument.Parse(utf8));

    public static JsonDocument Parse(string json) => Checked(JsonDocument.Parse(json));

    public static JsonDocument Parse(Stream utf8) => Checked(JsonDocument.Parse(utf8));

    private static JsonDocument Checked(JsonDocument document)
    {
        try
        {
            Check(document.RootElement, "$");
            return document;
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    private static void Check(JsonElement element, string where)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                Read(() => element.GetString(), where);
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray()) Check(item, $"{where}[{i++}]");
                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name = Read(() => property.Name, $"a property name in {where}");
                    Check(property.Value, $"{where}.{name}");
                }
                break;
        }
    }

    private static string Read(Func<string?> read, string where)
    {
        try
        {
            return read() ?? "";
        }
        catch (InvalidOperationException)
        {
            throw new JsonException($"{where} is not valid UTF-8 text (invalid bytes, or an unpaired \\ud800–\\udfff surrogate escape)");
        }
    }
}

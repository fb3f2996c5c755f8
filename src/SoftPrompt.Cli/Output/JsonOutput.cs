using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SoftPrompt.Cli.Output;

/// <summary>The one JSON document `--json` prints on standard output (everything for people then goes to standard error).</summary>
internal static class JsonOutput
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Write(JsonObject document) => Console.Out.WriteLine(document.ToJsonString(Options));

    /// <summary>A number, or null where JSON has none (NaN, infinity).</summary>
    public static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    /// <summary>A float as a float (0.1, not 0.10000000149011612), or null where JSON has none.</summary>
    public static JsonNode? Number(float value) => float.IsFinite(value) ? JsonValue.Create(value) : null;

    public static JsonObject Metrics(IReadOnlyDictionary<string, double> values)
    {
        var node = new JsonObject();
        foreach (var (name, value) in values) node[name] = Number(value);
        return node;
    }
}

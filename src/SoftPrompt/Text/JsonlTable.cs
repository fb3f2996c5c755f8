using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Text;

/// <summary>JSON Lines: one JSON object per line, blank lines ignored. Strings are used as they are; numbers and
/// booleans as their JSON text ("1", "0.5", "true"); nested arrays/objects as raw JSON.</summary>
internal static class JsonlTable
{
    public static TextTable Read(string path, BadRows bad)
    {
        var columns = new List<string>();
        var known = new HashSet<string>(StringComparer.Ordinal);
        var rows = new List<TextRow>();
        int line = 0;
        using var reader = StrictUtf8.Open(path);
        while (true)
        {
            string? text = reader.ReadLine();
            if (text is null) break;
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            var row = new TextRow(line, line, new Dictionary<string, string?>(StringComparer.Ordinal));
            if (!TryParse(text, row, path, bad)) continue;
            foreach (string key in row.Values.Keys)
                if (known.Add(key)) columns.Add(key);
            rows.Add(row);
        }
        return new TextTable(path, columns, rows, bad.Count, bad.Reasons);
    }

    private static bool TryParse(string text, TextRow row, string path, BadRows bad)
    {
        JsonDocument document;
        try { document = StrictJson.Parse(text); }
        catch (JsonException e)
        {
            bad.Report($"{row.Where(path)}: not valid JSON ({e.Message}).", e);
            return false;
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                bad.Report($"{row.Where(path)}: expected a JSON object {{\"column\": value, …}}, found {document.RootElement.ValueKind}.");
                return false;
            }
            var values = (Dictionary<string, string?>)row.Values;
            foreach (var property in document.RootElement.EnumerateObject())
                values[property.Name] = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString(),
                    JsonValueKind.Null => null,
                    JsonValueKind.True => "true",
                    JsonValueKind.False => "false",
                    _ => property.Value.GetRawText(),
                };
            return true;
        }
    }
}

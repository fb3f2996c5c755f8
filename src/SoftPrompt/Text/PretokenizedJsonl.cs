using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Text;

/// <summary>Reads rows {"input_ids": [...], "target_ids": [...]} with ids used exactly as given (no BOS/EOS added).</summary>
public static class PretokenizedJsonl
{
    /// <param name="maxTokens">Longest allowed input + target (n_positions − prompt length).</param>
    public static List<TokenizedExample> Load(string path, int vocabSize, int maxTokens) =>
        Load(path, vocabSize, maxTokens, skipBadRows: false, out _, out _);

    /// <param name="skipBadRows">Skip malformed rows, counting them in <paramref name="skippedRows"/> (first reasons in <paramref name="skipReasons"/>).</param>
    public static List<TokenizedExample> Load(string path, int vocabSize, int maxTokens, bool skipBadRows, out int skippedRows, out IReadOnlyList<string> skipReasons)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: data file not found.");
        var bad = new BadRows(skipBadRows);
        var rows = new List<TokenizedExample>();
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            try { rows.Add(ParseRow(text, path, line, vocabSize, maxTokens)); }
            catch (DataException e) { bad.Report(e.Message, e.InnerException); }
        }
        if (rows.Count == 0) throw new DataException($"{path}: no usable rows (expected one JSON object per line with input_ids and target_ids; {bad.Count} skipped).");
        skippedRows = bad.Count;
        skipReasons = bad.Reasons;
        return rows;
    }

    /// <summary>
    /// True for a .jsonl/.ndjson file whose first parseable line (of the first few non-blank ones) is a JSON object with
    /// "input_ids" or "target_ids": a damaged first line (a truncated download) then gets this loader's message naming
    /// the row, not a text-table column hint.
    /// </summary>
    public static bool IsPretokenized(string path)
    {
        if (!File.Exists(path) || Path.GetExtension(path).ToLowerInvariant() is not (".jsonl" or ".ndjson")) return false;
        int tried = 0;
        foreach (string text in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(text)) continue;
            if (++tried > 5) return false;
            try
            {
                using var document = StrictJson.Parse(text);
                var root = document.RootElement;
                return root.ValueKind == JsonValueKind.Object && (root.TryGetProperty("input_ids", out _) || root.TryGetProperty("target_ids", out _));
            }
            catch (JsonException) { }
        }
        return false;
    }

    private static TokenizedExample ParseRow(string text, string path, int line, int vocabSize, int maxTokens)
    {
        string where = $"{path}, row {line}";
        JsonElement root;
        try { root = StrictJson.Parse(text).RootElement; }
        catch (JsonException e) { throw new DataException($"{where}: not valid JSON ({e.Message}).", e); }
        if (root.ValueKind != JsonValueKind.Object) throw new DataException($"{where}: expected a JSON object with input_ids and target_ids.");
        int[] input = Ids(root, "input_ids", where, vocabSize, required: false);
        int[] target = Ids(root, "target_ids", where, vocabSize, required: true);
        if (target.Length == 0) throw new DataException($"{where}: target_ids is empty; every row needs at least one target token to train on.");
        if (input.Length + target.Length > maxTokens)
            throw new DataException($"{where}: {input.Length} input + {target.Length} target tokens exceed the {maxTokens} the model has room for after the prompt (n_positions − prompt length); shorten the row or the prompt.");
        return new TokenizedExample(input, target);
    }

    private static int[] Ids(JsonElement root, string name, string where, int vocabSize, bool required)
    {
        if (!root.TryGetProperty(name, out var array))
            return required ? throw new DataException($"{where}: missing \"{name}\".") : [];
        if (array.ValueKind != JsonValueKind.Array) throw new DataException($"{where}: \"{name}\" must be an array of token ids.");
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long id))
                throw new DataException($"{where}: \"{name}\"[{i}] is not an integer token id.");
            if (id < 0 || id >= vocabSize)
                throw new DataException($"{where}: \"{name}\"[{i}] = {id} is outside the model's vocabulary [0, {vocabSize}).");
            ids[i++] = (int)id;
        }
        return ids;
    }
}

using System.Text.Encodings.Web;
using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Text;

/// <summary>Reads the vocabulary files Hugging Face ships beside a checkpoint: vocab.json (token → id) and merges.txt.</summary>
internal static class VocabFiles
{
    public static Dictionary<string, int> ReadVocabJson(string path)
    {
        JsonElement root;
        try { root = StrictJson.Parse(File.ReadAllBytes(path)).RootElement; }
        catch (JsonException e) { throw new DataException($"{path}: not valid JSON ({e.Message}); expected an object mapping each token to its id.", e); }
        if (root.ValueKind != JsonValueKind.Object) throw new DataException($"{path}: expected a JSON object mapping each token to its id.");
        return ReadTokenIds(root, path);
    }

    /// <summary>An object {token: id, …} with unique non-negative ids (a shared id would make decoding ambiguous).</summary>
    public static Dictionary<string, int> ReadTokenIds(JsonElement map, string where)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var owner = new Dictionary<int, string>();
        foreach (var entry in map.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new DataException($"{where}: token {Quote(entry.Name)} has id {entry.Value.GetRawText()}; ids must be non-negative integers.");
            if (owner.TryGetValue(id, out string? other))
                throw new DataException($"{where}: tokens {Quote(other)} and {Quote(entry.Name)} share id {id}; every token needs its own id.");
            if (!vocab.TryAdd(entry.Name, id))
                throw new DataException($"{where}: token {Quote(entry.Name)} appears twice.");
            owner[id] = entry.Name;
        }
        if (vocab.Count == 0) throw new DataException($"{where}: the vocabulary is empty.");
        return vocab;
    }

    /// <summary>merges.txt: an optional "#version" line, then one "left right" pair per line, highest priority first.</summary>
    public static List<(string Left, string Right)> ReadMerges(string path, IReadOnlyDictionary<string, int> vocab)
    {
        var merges = new List<(string, string)>();
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (text.Length == 0 || (line == 1 && text.StartsWith("#version", StringComparison.Ordinal))) continue;
            string[] parts = text.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new DataException($"{path}, line {line}: expected two tokens separated by one space, found {Quote(text)}.");
            CheckMerge(parts[0], parts[1], vocab, $"{path}, line {line}");
            merges.Add((parts[0], parts[1]));
        }
        return merges;
    }

    /// <summary>
    /// added_tokens.json ({token: id}), the tokens added after training (a [PAD] on GPT-2, CodeGen's runs of spaces);
    /// an id a different vocabulary token already has is refused, as it would make decoding ambiguous.
    /// </summary>
    public static List<AddedToken> ReadAddedTokensJson(string path, IReadOnlyDictionary<string, int> vocab)
    {
        JsonElement root;
        try { root = StrictJson.Parse(File.ReadAllBytes(path)).RootElement; }
        catch (JsonException e) { throw new DataException($"{path}: not valid JSON ({e.Message}); expected an object mapping each added token to its id.", e); }
        if (root.ValueKind != JsonValueKind.Object) throw new DataException($"{path}: expected a JSON object mapping each added token to its id.");
        var owners = vocab.ToDictionary(entry => entry.Value, entry => entry.Key);
        var added = new List<AddedToken>();
        foreach (var entry in root.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw new DataException($"{path}: token {Quote(entry.Name)} has id {entry.Value.GetRawText()}; ids must be non-negative integers.");
            if (owners.TryGetValue(id, out string? owner) && owner != entry.Name)
                throw new DataException($"{path}: token {Quote(entry.Name)} has id {id}, which vocab.json gives to {Quote(owner)}; the files come from different tokenizers.");
            added.Add(new AddedToken(entry.Name, id));
        }
        return added;
    }

    /// <summary>Both halves and their join must be tokens, as Hugging Face's BPE builder requires.</summary>
    public static void CheckMerge(string left, string right, IReadOnlyDictionary<string, int> vocab, string where)
    {
        foreach (string token in new[] { left, right, left + right })
            if (!vocab.ContainsKey(token))
                throw new DataException($"{where}: merge {Quote(left)} + {Quote(right)} uses {Quote(token)}, which is not in the vocabulary; the vocabulary and merges come from different tokenizers.");
    }

    /// <summary>A token in double quotes with control characters escaped, readable in messages ("Ġthe", "\n", "<pad>").</summary>
    public static string Quote(string token) => JsonSerializer.Serialize(token, Readable);

    private static readonly JsonSerializerOptions Readable = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}

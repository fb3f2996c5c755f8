using System.Text.Json;
using System.Text.RegularExpressions;

namespace SoftPrompt.Text;

/// <summary>
/// Reads a Hugging Face tokenizer.json whose model is byte-level BPE into a <see cref="ByteLevelBpeTokenizer"/>:
/// model.vocab, model.merges (either "a b" strings or ["a", "b"] pairs), added_tokens, and the pre-tokenizer regex.
/// Other shapes (Unigram, WordPiece, Metaspace BPE, normalizers) are refused with the file and field named rather
/// than tokenized differently from Hugging Face.
/// </summary>
internal static class TokenizerJson
{
    public static ByteLevelBpeTokenizer Load(string path, SpecialTokenNames names)
    {
        JsonElement root;
        try { root = JsonDocument.Parse(File.ReadAllBytes(path)).RootElement; }
        catch (JsonException e) { throw new DataException($"{path}: not valid JSON ({e.Message}).", e); }
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: no \"model\" object; this is not a Hugging Face tokenizer.json.");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "(missing)";
        if (type != "BPE")
            throw new DataException($"{path}: model type \"{type}\" is not supported from tokenizer.json (only byte-level BPE is); for SentencePiece models put spiece.model or tokenizer.model in the directory.");
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
            throw new DataException($"{path}: a \"normalizer\" is set ({Type(normalizer)}); only tokenizers without one are supported, so text would not match Hugging Face's ids.");
        string pattern = PreTokenizerPattern(root, path);
        if (!model.TryGetProperty("vocab", out var vocabJson) || vocabJson.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: model.vocab is missing or not an object.");
        var vocab = VocabFiles.ReadTokenIds(vocabJson, $"{path}, model.vocab");
        var merges = Merges(model, vocab, path);
        var added = AddedTokens(root, path);
        return new ByteLevelBpeTokenizer(vocab, merges, added, pattern, names, path,
            $"byte-level BPE from tokenizer.json ({vocab.Count} tokens, {merges.Count} merges, {added.Count} added tokens)");
    }

    /// <summary>
    /// ByteLevel alone uses GPT-2's regex; Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)] (Llama 3, Qwen …)
    /// uses the Split's regex, extended so that text between matches stays a piece of its own as "Isolated" keeps it.
    /// </summary>
    private static string PreTokenizerPattern(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: no \"pre_tokenizer\"; only byte-level BPE tokenizers are supported.");
        if (Type(pre) == "ByteLevel")
        {
            CheckByteLevel(pre, path, expectRegex: true);
            return ByteLevelBpeTokenizer.Gpt2Pattern;
        }
        if (Type(pre) == "Sequence" && pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array
            && list.GetArrayLength() == 2 && Type(list[0]) == "Split" && Type(list[1]) == "ByteLevel")
        {
            var split = list[0];
            CheckByteLevel(list[1], path, expectRegex: false);
            if (!split.TryGetProperty("pattern", out var p) || !p.TryGetProperty("Regex", out var regex) || regex.ValueKind != JsonValueKind.String)
                throw new DataException($"{path}: pre_tokenizer Split has no \"pattern\": {{\"Regex\": …}}; only regex splits are supported.");
            if (!split.TryGetProperty("behavior", out var behavior) || behavior.ValueKind != JsonValueKind.String || behavior.GetString() != "Isolated"
                || (split.TryGetProperty("invert", out var invert) && invert.ValueKind == JsonValueKind.True))
                throw new DataException($"{path}: pre_tokenizer Split must use behavior \"Isolated\" without invert; other split behaviours are not supported.");
            string pieces = regex.GetString()!;
            try { _ = new Regex(pieces); }
            catch (ArgumentException e) { throw new DataException($"{path}: the pre_tokenizer regex does not compile in .NET ({e.Message}).", e); }
            return $"{pieces}|(?:(?!(?:{pieces}))(?s:.))+";
        }
        throw new DataException($"{path}: pre_tokenizer {Type(pre)} is not supported; only ByteLevel, or Split(regex) followed by ByteLevel, is.");
    }

    private static void CheckByteLevel(JsonElement byteLevel, string path, bool expectRegex)
    {
        if (byteLevel.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
            throw new DataException($"{path}: ByteLevel add_prefix_space = true is not supported (it changes how the first word is tokenized).");
        bool useRegex = !byteLevel.TryGetProperty("use_regex", out var r) || r.ValueKind != JsonValueKind.False;
        if (useRegex != expectRegex)
            throw new DataException($"{path}: ByteLevel use_regex = {useRegex.ToString().ToLowerInvariant()} is not supported in this pre_tokenizer arrangement.");
    }

    private static List<string> Merges(JsonElement model, Dictionary<string, int> vocab, string path)
    {
        if (!model.TryGetProperty("merges", out var mergesJson) || mergesJson.ValueKind != JsonValueKind.Array)
            throw new DataException($"{path}: model.merges is missing or not an array.");
        var merges = new List<string>(mergesJson.GetArrayLength());
        int i = 0;
        foreach (var merge in mergesJson.EnumerateArray())
        {
            string where = $"{path}, model.merges[{i++}]";
            string? left, right;
            if (merge.ValueKind == JsonValueKind.String)
            {
                string[] parts = merge.GetString()!.Split(' ');
                (left, right) = parts.Length == 2 ? (parts[0], parts[1]) : (null, null);
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                     && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                (left, right) = (merge[0].GetString(), merge[1].GetString());
            else (left, right) = (null, null);
            if (string.IsNullOrEmpty(left) || string.IsNullOrEmpty(right) || left.Contains(' ') || right.Contains(' '))
                throw new DataException($"{where}: expected \"left right\" or [\"left\", \"right\"] with two non-empty tokens without spaces, found {merge.GetRawText()}.");
            VocabFiles.CheckMerge(left, right, vocab, where);
            merges.Add($"{left} {right}");
        }
        return merges;
    }

    private static Dictionary<string, int> AddedTokens(JsonElement root, string path)
    {
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!root.TryGetProperty("added_tokens", out var list) || list.ValueKind == JsonValueKind.Null) return added;
        if (list.ValueKind != JsonValueKind.Array) throw new DataException($"{path}: added_tokens must be an array.");
        int i = 0;
        foreach (var token in list.EnumerateArray())
        {
            if (token.ValueKind != JsonValueKind.Object
                || !token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String
                || !token.TryGetProperty("id", out var id) || !id.TryGetInt32(out int value) || value < 0)
                throw new DataException($"{path}, added_tokens[{i}]: expected {{\"id\": n, \"content\": \"…\"}}.");
            added[content.GetString()!] = value;
            i++;
        }
        return added;
    }

    private static string Type(JsonElement element) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()! : element.ValueKind.ToString();
}

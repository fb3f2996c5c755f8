using System.Text.Json;
using SoftPrompt.Checkpoints;
using System.Text.RegularExpressions;

namespace SoftPrompt.Text;

/// <summary>
/// Reads a Hugging Face tokenizer.json. A Unigram model (T5) goes to <see cref="UnigramTokenizerJson"/>; byte-level BPE
/// becomes a <see cref="ByteLevelBpeTokenizer"/> from
/// model.vocab, model.merges (either "a b" strings or ["a", "b"] pairs), model.ignore_merges, added_tokens (with
/// lstrip / rstrip), an NFC normalizer, and the pre-tokenizer: ByteLevel, Split (regex or string, "Isolated") and
/// Digits, alone or in a Sequence ending with ByteLevel. Anything else (WordPiece, Metaspace with BPE, other
/// normalizers, BPE dropout or subword affixes) is refused with the file and feature named rather than tokenized
/// differently from Hugging Face.
/// </summary>
internal static class TokenizerJson
{
    public static ITextTokenizer Load(string path, SpecialTokenNames names)
    {
        JsonElement root;
        try { root = StrictJson.Parse(File.ReadAllBytes(path)).RootElement; }
        catch (JsonException e) { throw new DataException($"{path}: not valid JSON ({e.Message}).", e); }
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: no \"model\" object; this is not a Hugging Face tokenizer.json.");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "(missing)";
        if (type == "Unigram") return UnigramTokenizerJson.Load(root, model, path, names);
        if (type != "BPE")
            throw new DataException($"{path}: model type \"{type}\" is not supported from tokenizer.json (only byte-level BPE and Unigram are); for SentencePiece models put spiece.model or tokenizer.model in the directory.");
        CheckModelOptions(model, path);
        var pipeline = new ByteLevelPipeline(PreTokenizerSteps(root, path), Nfc(root, path), Flag(model, "ignore_merges"));
        if (!model.TryGetProperty("vocab", out var vocabJson) || vocabJson.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: model.vocab is missing or not an object.");
        var vocab = VocabFiles.ReadTokenIds(vocabJson, $"{path}, model.vocab");
        var merges = Merges(model, vocab, path);
        var added = AddedTokens(root, path);
        return new ByteLevelBpeTokenizer(vocab, merges, added, pipeline, names, path,
            $"byte-level BPE from tokenizer.json ({vocab.Count} tokens, {merges.Count} merges, {added.Count} added tokens)");
    }

    private static void CheckModelOptions(JsonElement model, string path)
    {
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() != 0)
            throw new DataException($"{path}: model.dropout = {dropout.GetRawText()} (BPE dropout) is not supported; it makes the ids random.");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model.TryGetProperty(affix, out var value) && value.ValueKind == JsonValueKind.String && value.GetString()!.Length > 0)
                throw new DataException($"{path}: model.{affix} = {value.GetRawText()} is not supported; byte-level BPE has no subword affixes.");
    }

    /// <summary>No normalizer, or NFC (alone or in a Sequence): anything else would change the text in ways not reproduced here.</summary>
    private static bool Nfc(JsonElement root, string path)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null) return false;
        var parts = Type(normalizer) == "Sequence" && normalizer.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? [.. list.EnumerateArray()] : new[] { normalizer };
        foreach (var part in parts)
            if (Type(part) != "NFC")
                throw new DataException($"{path}: normalizer {Type(part)} is not supported (only NFC is), so text would not match Hugging Face's ids.");
        return parts.Length > 0;
    }

    /// <summary>
    /// ByteLevel alone splits with GPT-2's regex; a Sequence (Llama 3: Split(regex, Isolated) then ByteLevel(use_regex=false);
    /// SmolLM: Digits then ByteLevel) applies each step to every piece the previous steps left.
    /// </summary>
    private static List<SplitStep> PreTokenizerSteps(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: no \"pre_tokenizer\"; only byte-level BPE tokenizers are supported.");
        JsonElement[] list = Type(pre) == "Sequence" && pre.TryGetProperty("pretokenizers", out var items) && items.ValueKind == JsonValueKind.Array
            ? [.. items.EnumerateArray()] : [pre];
        foreach (var step in list)
            if (Type(step) is not ("ByteLevel" or "Split" or "Digits"))
                throw new DataException($"{path}: pre_tokenizer {Type(step)} is not supported; only ByteLevel, Split and Digits are, alone or in a Sequence ending with ByteLevel.");
        if (list.Length == 0 || Type(list[^1]) != "ByteLevel" || list[..^1].Any(step => Type(step) == "ByteLevel"))
            throw new DataException($"{path}: the pre_tokenizer must end with ByteLevel, once (found {string.Join(", ", list.Select(Type))}); only byte-level BPE tokenizers are supported.");
        return [.. list.Select(step => Type(step) switch
        {
            "ByteLevel" => new SplitStep(Flag(step, "use_regex", absent: true) ? Compile(ByteLevelBpeTokenizer.Gpt2Pattern, path) : null, Flag(step, "add_prefix_space")),
            "Digits" => new SplitStep(Compile(Flag(step, "individual_digits") ? @"\p{N}" : @"\p{N}+", path)),
            _ => new SplitStep(Compile(SplitPattern(step, path), path)),
        })];
    }

    private static string SplitPattern(JsonElement split, string path)
    {
        if (!split.TryGetProperty("behavior", out var behavior) || behavior.ValueKind != JsonValueKind.String || behavior.GetString() != "Isolated" || Flag(split, "invert"))
            throw new DataException($"{path}: pre_tokenizer Split with behavior {(split.TryGetProperty("behavior", out var b) ? b.GetRawText() : "(missing)")}{(Flag(split, "invert") ? " and invert" : "")} is not supported; only \"Isolated\" without invert is.");
        if (split.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object)
        {
            if (pattern.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String) return regex.GetString()!;
            if (pattern.TryGetProperty("String", out var literal) && literal.ValueKind == JsonValueKind.String) return Regex.Escape(literal.GetString()!);
        }
        throw new DataException($"{path}: pre_tokenizer Split has no \"pattern\": {{\"Regex\": …}} or {{\"String\": …}}.");
    }

    private static Regex Compile(string pattern, string path)
    {
        try { return CodePointRegex.Create(pattern); }
        catch (ArgumentException e) { throw new DataException($"{path}: the pre_tokenizer regex {VocabFiles.Quote(pattern)} is not supported ({e.Message}).", e); }
    }

    internal static bool Flag(JsonElement element, string name, bool absent = false) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : absent;

    private static List<(string Left, string Right)> Merges(JsonElement model, Dictionary<string, int> vocab, string path)
    {
        if (!model.TryGetProperty("merges", out var mergesJson) || mergesJson.ValueKind != JsonValueKind.Array)
            throw new DataException($"{path}: model.merges is missing or not an array.");
        var merges = new List<(string, string)>(mergesJson.GetArrayLength());
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
            merges.Add((left, right));
        }
        return merges;
    }

    internal static List<AddedToken> AddedTokens(JsonElement root, string path)
    {
        var added = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out var list) || list.ValueKind == JsonValueKind.Null) return added;
        if (list.ValueKind != JsonValueKind.Array) throw new DataException($"{path}: added_tokens must be an array.");
        int i = 0;
        foreach (var token in list.EnumerateArray())
        {
            if (token.ValueKind != JsonValueKind.Object
                || !token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String
                || !token.TryGetProperty("id", out var id) || !id.TryGetInt32(out int value) || value < 0)
                throw new DataException($"{path}, added_tokens[{i}]: expected {{\"id\": n, \"content\": \"…\"}}.");
            if (Flag(token, "single_word"))
                throw new DataException($"{path}, added_tokens[{i}]: single_word = true is not supported (the token would match only as a whole word).");
            added.Add(new AddedToken(content.GetString()!, value, Flag(token, "lstrip"), Flag(token, "rstrip"), Flag(token, "normalized")));
            i++;
        }
        return added;
    }

    internal static string Type(JsonElement element) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()! : element.ValueKind.ToString();
}

using System.Text.Json;

namespace SoftPrompt.Text;

/// <summary>
/// Reads a Hugging Face tokenizer.json whose model is Unigram (as transformers' converter writes T5's, mT5's and
/// flan-t5's) into a <see cref="UnigramTokenizer"/>: model.vocab ([piece, score] pairs), unk_id, byte_fallback; the
/// normalizers Precompiled (sentencepiece's character map), Strip and Replace, alone or in a Sequence; the pre-tokenizer
/// Metaspace (prepend_scheme always / first / never, or the older add_prefix_space; split on or off), alone or after
/// WhitespaceSplit; the Metaspace decoder; added tokens, matched in the raw text or (normalized = true) in the
/// normalized text. Anything else is refused with the file
/// and the feature named rather than tokenized differently from Hugging Face.
/// </summary>
internal static class UnigramTokenizerJson
{
    public static UnigramTokenizer Load(JsonElement root, JsonElement model, string path, SpecialTokenNames names)
    {
        var vocab = Vocab(model, path);
        int? unknownId = UnknownId(model, vocab.Length, path);
        bool byteFallback = TokenizerJson.Flag(model, "byte_fallback");
        var normalizers = Normalizers(root, path);
        var metaspace = PreTokenizer(root, path);
        var decoderPrepend = Decoder(root, metaspace, path);
        var added = TokenizerJson.AddedTokens(root, path);
        var index = new TokenIndex(vocab.Select((v, id) => KeyValuePair.Create(v.Piece, id)).Concat(added.Select(t => KeyValuePair.Create(t.Content, t.Id))));
        return new UnigramTokenizer(new UnigramModel(vocab, unknownId, byteFallback, path), normalizers, metaspace, decoderPrepend, added, index, names,
            Template(root), $"Unigram from tokenizer.json ({vocab.Length} pieces, {added.Count} added tokens)");
    }

    private static (string Piece, double Score)[] Vocab(JsonElement model, string path)
    {
        if (!model.TryGetProperty("vocab", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            throw new DataException($"{path}: model.vocab is missing or not a non-empty array of [piece, score] pairs.");
        var vocab = new (string, double)[list.GetArrayLength()];
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        int id = 0;
        foreach (var entry in list.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2 || entry[0].ValueKind != JsonValueKind.String
                || entry[0].GetString() is not { Length: > 0 } piece || entry[1].ValueKind != JsonValueKind.Number
                || !entry[1].TryGetDouble(out double score) || !double.IsFinite(score))
                throw new DataException($"{path}, model.vocab[{id}]: expected [\"piece\", score] with a non-empty piece and a finite score, found {entry.GetRawText()}.");
            if (!first.TryAdd(piece, id))
                throw new DataException($"{path}, model.vocab[{id}]: piece {VocabFiles.Quote(piece)} is already model.vocab[{first[piece]}]; the file is corrupt.");
            vocab[id++] = (piece, score);
        }
        return vocab;
    }

    private static int? UnknownId(JsonElement model, int size, string path)
    {
        if (!model.TryGetProperty("unk_id", out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int id) || id < 0 || id >= size)
            throw new DataException($"{path}: model.unk_id = {value.GetRawText()} is not an id of the {size}-piece vocabulary.");
        return id;
    }

    private static List<Func<string, string>> Normalizers(JsonElement root, string path)
    {
        var steps = new List<Func<string, string>>();
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null) return steps;
        var parts = TokenizerJson.Type(normalizer) == "Sequence" && normalizer.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? [.. list.EnumerateArray()] : new[] { normalizer };
        foreach (var part in parts)
            steps.Add(TokenizerJson.Type(part) switch
            {
                "Precompiled" => Precompiled(part, path),
                "Strip" => Strip(TokenizerJson.Flag(part, "strip_left"), TokenizerJson.Flag(part, "strip_right")),
                "Replace" => Replace(part, path),
                string other => throw new DataException(
                    $"{path}: normalizer {other} is not supported for Unigram tokenizers (only Precompiled, Strip and Replace are), so text would not match Hugging Face's ids."),
            });
        return steps;
    }

    private static Func<string, string> Precompiled(JsonElement part, string path)
    {
        byte[] map;
        try { map = part.GetProperty("precompiled_charsmap").GetBytesFromBase64(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DataException($"{path}: normalizer Precompiled has no base64 \"precompiled_charsmap\".", e);
        }
        var charsmap = new PrecompiledCharsmap(map, $"{path}: normalizer Precompiled's precompiled_charsmap");
        if (!charsmap.ReplacementsAreUtf8)
            throw new DataException($"{path}: normalizer Precompiled's precompiled_charsmap has replacements that are not UTF-8; the file is corrupt.");
        return charsmap.NormalizeByGrapheme;
    }

    private static Func<string, string> Strip(bool left, bool right) => text => (left, right) switch
    {
        (true, true) => text.Trim(),
        (true, false) => text.TrimStart(),
        (false, true) => text.TrimEnd(),
        _ => text,
    };

    private static Func<string, string> Replace(JsonElement part, string path)
    {
        string? content = part.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        if (content is not null && part.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object)
        {
            if (pattern.TryGetProperty("String", out var literal) && literal.ValueKind == JsonValueKind.String && literal.GetString() is { Length: > 0 } s)
                return text => text.Replace(s, content, StringComparison.Ordinal);
            if (pattern.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String)
            {
                System.Text.RegularExpressions.Regex compiled;
                try { compiled = CodePointRegex.Create(regex.GetString()!); }
                catch (ArgumentException e) { throw new DataException($"{path}: the Replace normalizer's regex {regex.GetRawText()} is not supported ({e.Message}).", e); }
                return text => compiled.Replace(text, _ => content);
            }
        }
        throw new DataException($"{path}: normalizer Replace needs \"pattern\": {{\"String\": …}} (non-empty) or {{\"Regex\": …}} and a \"content\" string.");
    }

    /// <summary>Metaspace, alone, in a one-element Sequence, or after WhitespaceSplit (T5's older files).</summary>
    private static MetaspaceOptions PreTokenizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            throw new DataException($"{path}: no \"pre_tokenizer\"; Unigram tokenizers are supported with the Metaspace pre-tokenizer only.");
        JsonElement[] list = TokenizerJson.Type(pre) == "Sequence" && pre.TryGetProperty("pretokenizers", out var items) && items.ValueKind == JsonValueKind.Array
            ? [.. items.EnumerateArray()] : [pre];
        string[] types = [.. list.Select(TokenizerJson.Type)];
        bool whitespaceSplit = types is ["WhitespaceSplit", "Metaspace"];
        if (!whitespaceSplit && types is not ["Metaspace"])
            throw new DataException($"{path}: pre_tokenizer {string.Join(", ", types)} is not supported for Unigram tokenizers; only Metaspace is, alone or after WhitespaceSplit.");
        var (replacement, prepend) = Metaspace(list[^1], "pre_tokenizer", path);
        if (whitespaceSplit && prepend == PrependScheme.First)
            throw new DataException($"{path}: pre_tokenizer Metaspace with prepend_scheme \"first\" after WhitespaceSplit is not supported.");
        return new MetaspaceOptions(replacement, prepend, TokenizerJson.Flag(list[^1], "split", absent: true), whitespaceSplit);
    }

    private static (string Replacement, PrependScheme Prepend) Metaspace(JsonElement metaspace, string role, string path)
    {
        if (!metaspace.TryGetProperty("replacement", out var r) || r.ValueKind != JsonValueKind.String || r.GetString() is not { } replacement
            || replacement.Length == 0 || replacement.EnumerateRunes().Count() != 1)
            throw new DataException($"{path}: {role} Metaspace needs a one-character \"replacement\".");
        string? scheme = metaspace.TryGetProperty("prepend_scheme", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        // Files written before prepend_scheme existed say add_prefix_space (true: always, false: never).
        bool? addPrefixSpace = metaspace.TryGetProperty("add_prefix_space", out var a) && a.ValueKind is JsonValueKind.True or JsonValueKind.False ? a.GetBoolean() : null;
        var prepend = scheme switch
        {
            "always" => PrependScheme.Always,
            "first" => PrependScheme.First,
            "never" => PrependScheme.Never,
            null => addPrefixSpace == false ? PrependScheme.Never : PrependScheme.Always,
            _ => throw new DataException($"{path}: {role} Metaspace prepend_scheme \"{scheme}\" is not one of always, first, never."),
        };
        if (addPrefixSpace == false && prepend != PrependScheme.Never)
            throw new DataException($"{path}: {role} Metaspace says add_prefix_space = false but prepend_scheme \"{scheme}\"; Hugging Face refuses this file too.");
        return (replacement, prepend);
    }

    private static PrependScheme Decoder(JsonElement root, MetaspaceOptions metaspace, string path)
    {
        if (!root.TryGetProperty("decoder", out var decoder) || TokenizerJson.Type(decoder) != "Metaspace")
            throw new DataException($"{path}: decoder {(root.TryGetProperty("decoder", out var d) ? TokenizerJson.Type(d) : "(missing)")} is not supported for Unigram tokenizers; only Metaspace is.");
        var (replacement, prepend) = Metaspace(decoder, "decoder", path);
        if (replacement != metaspace.Replacement)
            throw new DataException($"{path}: the Metaspace decoder's replacement {VocabFiles.Quote(replacement)} differs from the pre-tokenizer's {VocabFiles.Quote(metaspace.Replacement)}; this is not supported.");
        return prepend;
    }

    /// <summary>The special tokens a TemplateProcessing post-processor puts first and last around a single text (T5: none, &lt;/s&gt;).</summary>
    private static (string? First, string? Last) Template(JsonElement root)
    {
        if (!root.TryGetProperty("post_processor", out var processor) || TokenizerJson.Type(processor) != "TemplateProcessing"
            || !processor.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0)
            return (null, null);
        static string? Special(JsonElement item) =>
            item.ValueKind == JsonValueKind.Object && item.TryGetProperty("SpecialToken", out var token) && token.ValueKind == JsonValueKind.Object
            && token.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        return (Special(single[0]), Special(single[single.GetArrayLength() - 1]));
    }
}

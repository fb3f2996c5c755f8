using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SoftPrompt.Tests.Text;

/// <summary>
/// Writes SentencePiece .model files (the ModelProto protobuf) by hand, so the loader can be tested without
/// downloading a real model. Field numbers are those of sentencepiece_model.proto.
/// </summary>
public static class SentencePieceModelBuilder
{
    public const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;

    private static readonly (string Piece, float Score, int Type)[] T5Pieces =
    [
        ("<pad>", 0, Control), ("</s>", 0, Control), ("<unk>", 0, Unknown),
        ("▁", -2, Normal), ("▁the", -1, Normal), ("▁hello", -1, Normal), ("▁wor", -1.5f, Normal), ("ld", -1.5f, Normal),
        ("h", -3, Normal), ("e", -3, Normal), ("t", -3, Normal), ("l", -3, Normal), ("o", -3, Normal), ("w", -3, Normal), ("r", -3, Normal), ("d", -3, Normal),
    ];

    /// <summary>T5-like: Unigram, &lt;pad&gt;=0 &lt;/s&gt;=1 &lt;unk&gt;=2, no BOS (bos_id = -1), whitespace folding, no byte fallback.</summary>
    public static byte[] T5Like() => Model(modelType: 1, T5Pieces, byteFallback: false, unk: 2, bos: -1, eos: 1, pad: 0, removeExtraWhitespace: true);

    /// <summary>
    /// <see cref="T5Like"/>'s twin as transformers' T5 converter writes tokenizer.json (no character map, as the model has
    /// none): the pieces and scores, Strip + Replace(" {2,}" → "▁"), Metaspace, the "$A &lt;/s&gt;" template, the
    /// control and unknown pieces as special added tokens.
    /// </summary>
    public static string T5LikeTokenizerJson()
    {
        string vocab = string.Join(", ", T5Pieces.Select(p => $"[{JsonSerializer.Serialize(p.Piece)}, {p.Score.ToString(CultureInfo.InvariantCulture)}]"));
        string added = string.Join(", ", T5Pieces.Select((p, id) => (p, id)).Where(x => x.p.Type != Normal)
            .Select(x => $$"""{"id": {{x.id}}, "content": {{JsonSerializer.Serialize(x.p.Piece)}}, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}"""));
        const string metaspace = """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""";
        return $$$"""
            {"version": "1.0", "added_tokens": [{{{added}}}],
             "normalizer": {"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": false, "strip_right": true},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}]},
             "pre_tokenizer": {{{metaspace}}}, "decoder": {{{metaspace}}},
             "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "pair": [], "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]} } },
             "model": {"type": "Unigram", "unk_id": 2, "vocab": [{{{vocab}}}], "byte_fallback": false}}
            """;
    }

    /// <summary>Llama-like: BPE, &lt;unk&gt;=0 &lt;s&gt;=1 &lt;/s&gt;=2, 256 byte pieces (ids 3..258), merges scored by priority, byte fallback.</summary>
    public static byte[] LlamaLike()
    {
        var pieces = new List<(string, float, int)> { ("<unk>", 0, Unknown), ("<s>", 0, Control), ("</s>", 0, Control) };
        for (int b = 0; b < 256; b++) pieces.Add(($"<0x{b:X2}>", 0, Byte));
        // 259 ▁t, 260 he, 261 ▁the, 262 ▁w, 263 or, 264 ld, 265 ▁wor, 266 ▁world, 267 ▁, then single letters.
        string[] merged = ["▁t", "he", "▁the", "▁w", "or", "ld", "▁wor", "▁world", "▁"];
        for (int i = 0; i < merged.Length; i++) pieces.Add((merged[i], -1 - i, Normal));
        foreach (string letter in new[] { "t", "h", "e", "w", "o", "r", "l", "d" }) pieces.Add((letter, -20, Normal));
        return Model(modelType: 2, pieces, byteFallback: true, unk: 0, bos: 1, eos: 2, pad: -1, removeExtraWhitespace: false);
    }

    public static byte[] Model(int modelType, IReadOnlyList<(string Piece, float Score, int Type)> pieces, bool byteFallback,
        int unk, int bos, int eos, int pad, bool removeExtraWhitespace)
    {
        var model = new List<byte>();
        foreach (var (piece, score, type) in pieces)
        {
            var message = new List<byte>();
            String(message, 1, piece);
            Tag(message, 2, 5);
            message.AddRange(BitConverter.GetBytes(score));
            Int(message, 3, type);
            Bytes(model, 1, message);
        }
        var trainer = new List<byte>();
        Int(trainer, 3, modelType);
        Int(trainer, 4, pieces.Count);
        if (byteFallback) Int(trainer, 35, 1);
        Int(trainer, 40, unk);
        Int(trainer, 41, bos);
        Int(trainer, 42, eos);
        Int(trainer, 43, pad);
        Bytes(model, 2, trainer);
        var normalizer = new List<byte>();
        String(normalizer, 1, "identity");
        Int(normalizer, 3, 1);
        Int(normalizer, 4, removeExtraWhitespace ? 1 : 0);
        Int(normalizer, 5, 1);
        Bytes(model, 3, normalizer);
        return [.. model];
    }

    private static void Varint(List<byte> output, ulong value)
    {
        for (; value >= 0x80; value >>= 7) output.Add((byte)(value | 0x80));
        output.Add((byte)value);
    }

    private static void Tag(List<byte> output, int field, int wire) => Varint(output, (ulong)(field << 3 | wire));

    private static void Int(List<byte> output, int field, long value)
    {
        Tag(output, field, 0);
        Varint(output, unchecked((ulong)value));
    }

    private static void String(List<byte> output, int field, string value) => Bytes(output, field, [.. Encoding.UTF8.GetBytes(value)]);

    private static void Bytes(List<byte> output, int field, List<byte> value)
    {
        Tag(output, field, 2);
        Varint(output, (ulong)value.Count);
        output.AddRange(value);
    }
}

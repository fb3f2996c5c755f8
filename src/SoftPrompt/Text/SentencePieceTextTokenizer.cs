using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// A SentencePiece model (T5's spiece.model: Unigram; Llama's tokenizer.model: BPE with byte fallback), encoding as
/// Google's sentencepiece does. Normalization is the model's own (a T5 model folds runs of whitespace and has no newline
/// piece, so Decode(Encode(s)) need not equal s there, exactly as in Hugging Face).
/// </summary>
public sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    private readonly SentencePieceModelSpec spec;
    private readonly SentencePieceNormalizer normalizer;
    private readonly SentencePieceEncoder encoder;
    private readonly TokenIndex index;

    private SentencePieceTextTokenizer(SentencePieceModelSpec spec, SpecialTokenNames names, string path)
    {
        this.spec = spec;
        encoder = new SentencePieceEncoder(spec);
        normalizer = new SentencePieceNormalizer(spec, encoder.UserDefinedPieces, path);
        index = new TokenIndex(spec.Pieces.Select((piece, id) => KeyValuePair.Create(piece.Piece, id)));
        // A declared token wins; otherwise the ids trainer_spec records (-1 means the model has none).
        BosId = SpecialTokenNames.Resolve(names.Bos, "bos_token", index.Find) ?? Role(spec.BosId);
        EosId = SpecialTokenNames.Resolve(names.Eos, "eos_token", index.Find) ?? Role(spec.EosId);
        PadId = SpecialTokenNames.Resolve(names.Pad, "pad_token", index.Find) ?? Role(spec.PadId);
        string kind = spec.ModelType == SentencePieceModelSpec.Bpe ? "BPE" : "Unigram";
        Description = $"SentencePiece {kind} from {Path.GetFileName(path)} ({spec.Pieces.Length} pieces)";
    }

    public static SentencePieceTextTokenizer Load(string path, SpecialTokenNames names) =>
        new(SentencePieceModelSpec.Read(File.ReadAllBytes(path), path), names, path);

    public string Description { get; }
    public int VocabSize => index.Size;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    public int[] Encode(string text) => encoder.Encode(normalizer.Normalize(text));

    /// <summary>
    /// Pieces back to text: ▁ is a space, runs of byte pieces are UTF-8, special pieces read as their text (as Hugging
    /// Face decodes without skip_special_tokens), and the dummy-prefix space of the first text piece is dropped.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        index.CheckDecodable(ids);
        var text = new StringBuilder();
        var bytes = new List<byte>();
        bool first = true;
        foreach (int id in ids)
        {
            var (piece, _, type) = spec.Pieces[id];
            if (type == SentencePieceType.Byte) { bytes.Add(SentencePieceModelSpec.ByteOf(piece)!.Value); continue; }
            if (bytes.Count > 0) { text.Append(Encoding.UTF8.GetString([.. bytes])); bytes.Clear(); first = false; }
            if (type is SentencePieceType.Control or SentencePieceType.Unknown) { text.Append(piece); continue; }
            if (first && (spec.AddDummyPrefix || spec.RemoveExtraWhitespaces) && piece.StartsWith('▁')) piece = piece[1..];
            first = false;
            text.Append(piece.Replace('▁', ' '));
        }
        return text.Append(Encoding.UTF8.GetString([.. bytes])).ToString();
    }

    public string TokenText(int id) => index.Text(id);

    public override string ToString() => Description;

    private static int? Role(int id) => id >= 0 ? id : null;
}

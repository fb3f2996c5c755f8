using Microsoft.ML.Tokenizers;

namespace SoftPrompt.Text;

/// <summary>
/// A SentencePiece model (T5's spiece.model: Unigram; Llama's tokenizer.model: BPE with byte fallback) on
/// Microsoft.ML.Tokenizers' SentencePieceTokenizer. Normalization is the model's own (a T5 model folds runs of
/// whitespace and has no newline piece, so Decode(Encode(s)) need not equal s there, exactly as in Hugging Face).
/// </summary>
public sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    private readonly SentencePieceTokenizer model;
    private readonly TokenIndex index;

    private SentencePieceTextTokenizer(SentencePieceTokenizer model, SentencePieceModelSpec spec, SpecialTokenNames names, string description)
    {
        this.model = model;
        index = new TokenIndex(model.Vocabulary);
        // A declared token wins; otherwise the ids trainer_spec records (-1 means the model has none).
        BosId = SpecialTokenNames.Resolve(names.Bos, "bos_token", index.Find) ?? Role(spec.BosId);
        EosId = SpecialTokenNames.Resolve(names.Eos, "eos_token", index.Find) ?? Role(spec.EosId);
        PadId = SpecialTokenNames.Resolve(names.Pad, "pad_token", index.Find) ?? Role(spec.PadId);
        Description = description;
    }

    public static SentencePieceTextTokenizer Load(string path, SpecialTokenNames names)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var spec = SentencePieceModelSpec.Read(bytes, path);
        SentencePieceTokenizer model;
        try
        {
            using var stream = new MemoryStream([.. bytes, .. spec.WithAllRolesPresent()]);
            model = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not DataException)
        {
            throw new DataException($"{path}: Microsoft.ML.Tokenizers could not load this SentencePiece model ({e.GetType().Name}: {e.Message}).", e);
        }
        string kind = spec.ModelType == SentencePieceModelSpec.Bpe ? "BPE" : "Unigram";
        return new SentencePieceTextTokenizer(model, spec, names, $"SentencePiece {kind} from {Path.GetFileName(path)} ({spec.PieceCount} pieces)");
    }

    public string Description { get; }
    public int VocabSize => index.Size;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    public int[] Encode(string text) => [.. model.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)];

    public string Decode(ReadOnlySpan<int> ids)
    {
        index.CheckDecodable(ids);
        return model.Decode(ids.ToArray(), considerSpecialTokens: true);
    }

    public string TokenText(int id) => index.Text(id);

    public override string ToString() => Description;

    private static int? Role(int id) => id >= 0 ? id : null;
}

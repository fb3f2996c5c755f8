namespace SoftPrompt.Text;

/// <summary>
/// A vocabulary of whole symbols (vocab.json without merges.txt, as in the demo model): text is
/// whitespace-separated symbols, each mapped to its id; Decode joins the symbols with single spaces.
/// </summary>
public sealed class SymbolTokenizer : ITextTokenizer
{
    private readonly TokenIndex index;
    private readonly string source;

    public SymbolTokenizer(IReadOnlyDictionary<string, int> vocab, SpecialTokenNames names, string source)
    {
        index = new TokenIndex(vocab);
        this.source = source;
        // Without declared roles, the usual spellings of each role are tried.
        BosId = SpecialTokenNames.Resolve(names.Bos, "bos_token", index.Find) ?? FirstOf("<s>", "<bos>", "<|endoftext|>");
        EosId = SpecialTokenNames.Resolve(names.Eos, "eos_token", index.Find) ?? FirstOf("</s>", "<eos>", "<|endoftext|>");
        PadId = SpecialTokenNames.Resolve(names.Pad, "pad_token", index.Find) ?? FirstOf("<pad>");
        Description = $"symbol vocabulary from {Path.GetFileName(source)} ({vocab.Count} symbols)";
    }

    public static SymbolTokenizer Load(string vocabPath, SpecialTokenNames names)
    {
        var vocab = VocabFiles.ReadVocabJson(vocabPath);
        // A byte-level BPE vocabulary whose merges.txt went missing would otherwise load and then reject every word.
        if (ByteLevelAlphabet.FirstMissingByte(vocab) is null)
            throw new DataException($"{vocabPath}: this is a byte-level BPE vocabulary but merges.txt is missing beside it; copy merges.txt (or tokenizer.json) from the checkpoint.");
        return new SymbolTokenizer(vocab, names, vocabPath);
    }

    public string Description { get; }
    public int VocabSize => index.Size;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    public int[] Encode(string text)
    {
        var words = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[words.Length];
        for (int i = 0; i < words.Length; i++)
            ids[i] = index.Find(words[i]) ?? throw new DataException(
                $"symbol {VocabFiles.Quote(words[i])} is not in {source}; symbol vocabularies encode only whitespace-separated symbols they list.");
        return ids;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        index.CheckDecodable(ids);
        var words = new string[ids.Length];
        for (int i = 0; i < ids.Length; i++) words[i] = index.Text(ids[i]);
        return string.Join(' ', words);
    }

    public string TokenText(int id) => index.Text(id);

    public override string ToString() => Description;

    private int? FirstOf(params string[] tokens)
    {
        foreach (string token in tokens)
            if (index.Find(token) is int id) return id;
        return null;
    }
}

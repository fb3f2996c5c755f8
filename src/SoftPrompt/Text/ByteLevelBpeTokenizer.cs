using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;

namespace SoftPrompt.Text;

/// <summary>One pre-tokenizer step: optionally prefix each piece with a space, then split it with <paramref name="Split"/> (matches and the text between them each become pieces).</summary>
internal sealed record SplitStep(Regex? Split, bool AddPrefixSpace = false);

/// <summary>What runs between the added tokens and the BPE model: NFC normalization, the pre-tokenizer steps, ignore_merges.</summary>
internal sealed record ByteLevelPipeline(IReadOnlyList<SplitStep> Steps, bool Nfc = false, bool IgnoreMerges = false)
{
    public static ByteLevelPipeline Gpt2 => new([new SplitStep(CodePointRegex.Create(ByteLevelBpeTokenizer.Gpt2Pattern))]);
}

/// <summary>
/// GPT-2-style byte-level BPE (GPT-2, RoBERTa, GPT-J/NeoX, Llama 3, Qwen2 …) giving Hugging Face's ids: added tokens are
/// cut out first, each stretch between them is normalized and split by the pre-tokenizer regexes (on code points, see
/// <see cref="CodePointRegex"/>), and each piece's UTF-8 bytes go through <see cref="BytePairMerger"/>. Every byte has
/// a token, so any text encodes and Decode(Encode(s)) == s.
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITextTokenizer
{
    /// <summary>GPT-2's pre-tokenizer: contractions, then letter / digit / other runs each with one optional leading space, then whitespace.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BytePairMerger model;
    private readonly ByteLevelPipeline pipeline;
    private readonly AddedTokenSplitter addedTokens;
    private readonly TokenIndex index;

    internal ByteLevelBpeTokenizer(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<AddedToken> addedTokens, ByteLevelPipeline pipeline, SpecialTokenNames names, string source, string description)
    {
        if (ByteLevelAlphabet.FirstMissingByte(vocab) is int missing)
            throw new DataException($"{source}: byte 0x{missing:X2} ({VocabFiles.Quote(ByteLevelAlphabet.Symbols[missing].ToString())}) has no token, so some text could not be encoded; this is not a byte-level BPE vocabulary.");
        model = new BytePairMerger(vocab, merges, pipeline.IgnoreMerges);
        this.pipeline = pipeline;
        this.addedTokens = new AddedTokenSplitter(addedTokens);
        index = new TokenIndex(vocab.Concat(addedTokens.Select(t => KeyValuePair.Create(t.Content, t.Id))));
        // GPT-2 names no special tokens in its config: <|endoftext|> is its BOS and EOS, and it has no PAD.
        int? endOfText = index.Find("<|endoftext|>");
        BosId = SpecialTokenNames.Resolve(names.Bos, "bos_token", index.Find) ?? endOfText;
        EosId = SpecialTokenNames.Resolve(names.Eos, "eos_token", index.Find) ?? endOfText;
        PadId = SpecialTokenNames.Resolve(names.Pad, "pad_token", index.Find);
        Description = description;
    }

    /// <summary>From vocab.json + merges.txt (+ added_tokens.json when present), the files GPT-2's slow tokenizer reads.</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(string vocabPath, string mergesPath, SpecialTokenNames names)
    {
        var vocab = VocabFiles.ReadVocabJson(vocabPath);
        var merges = VocabFiles.ReadMerges(mergesPath, vocab);
        string addedPath = Path.Combine(Path.GetDirectoryName(vocabPath) ?? ".", "added_tokens.json");
        var added = File.Exists(addedPath) ? VocabFiles.ReadAddedTokensJson(addedPath, vocab) : [];
        // The slow tokenizer always treats <|endoftext|> and the declared special tokens as added tokens when the vocabulary has them.
        foreach (string? token in new[] { "<|endoftext|>", names.Bos?.Content, names.Eos?.Content, names.Pad?.Content })
            if (token is not null && vocab.TryGetValue(token, out int id)) added.Add(new AddedToken(token, id));
        return new ByteLevelBpeTokenizer(vocab, merges, added, ByteLevelPipeline.Gpt2, names, vocabPath,
            $"byte-level BPE from vocab.json + merges.txt ({vocab.Count} tokens, {merges.Count} merges" +
            (File.Exists(addedPath) ? $", added_tokens.json)" : ")"));
    }

    public string Description { get; }
    public int VocabSize => index.Size;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    public int[] Encode(string text) => addedTokens.Encode(text, EncodeBetweenAddedTokens);

    private void EncodeBetweenAddedTokens(ReadOnlySpan<char> text, int offset, List<int> ids)
    {
        if (pipeline.Nfc) text = Nfc.Apply(text);
        PreTokenize(text, 0, ids);
    }

    private void PreTokenize(ReadOnlySpan<char> piece, int step, List<int> ids)
    {
        if (step == pipeline.Steps.Count)
        {
            model.Encode(piece, ids);
            return;
        }
        var (split, addPrefixSpace) = pipeline.Steps[step];
        if (addPrefixSpace && piece[0] != ' ')
        {
            char[] prefixed = ArrayPool<char>.Shared.Rent(piece.Length + 1);
            prefixed[0] = ' ';
            piece.CopyTo(prefixed.AsSpan(1));
            Split(prefixed.AsSpan(0, piece.Length + 1), split, step, ids);
            ArrayPool<char>.Shared.Return(prefixed);
        }
        else Split(piece, split, step, ids);
    }

    private void Split(ReadOnlySpan<char> piece, Regex? split, int step, List<int> ids)
    {
        if (split is null)
        {
            PreTokenize(piece, step + 1, ids);
            return;
        }
        // Hugging Face's "Isolated" split: each match is a piece, and so is the text between matches.
        int done = 0;
        foreach (var match in split.EnumerateMatches(piece))
        {
            if (match.Length == 0) continue;
            if (match.Index > done) PreTokenize(piece[done..match.Index], step + 1, ids);
            PreTokenize(piece.Slice(match.Index, match.Length), step + 1, ids);
            done = match.Index + match.Length;
        }
        if (done < piece.Length) PreTokenize(piece[done..], step + 1, ids);
    }

    /// <summary>
    /// Hugging Face's ByteLevel decoder: a token spelled entirely in byte symbols stands for those bytes, any other
    /// (an added token such as "[PAD]" with characters outside the alphabet) for its own UTF-8; invalid UTF-8 becomes U+FFFD.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        index.CheckDecodable(ids);
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            string text = index.Text(id);
            if (text.All(c => ByteLevelAlphabet.ByteOf(c) >= 0)) foreach (char c in text) bytes.Add((byte)ByteLevelAlphabet.ByteOf(c));
            else bytes.AddRange(Encoding.UTF8.GetBytes(text));
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    public string TokenText(int id) => index.Text(id);

    public override string ToString() => Description;
}

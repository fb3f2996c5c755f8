using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace SoftPrompt.Text;

/// <summary>
/// GPT-2-style byte-level BPE (GPT-2, RoBERTa, GPT-J/NeoX, Llama 3 …) on Microsoft.ML.Tokenizers' BpeTokenizer:
/// split the text with the pre-tokenizer regex, spell each piece's UTF-8 bytes with <see cref="ByteLevelAlphabet"/>,
/// apply the merges. Every byte has a token, so any text encodes and Decode(Encode(s)) == s.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers' CodeGenTokenizer is not used: it hard-codes CodeGen's extra whitespace tokens
/// (ids 50257+), which do not exist in GPT-2's vocabulary, and a regex that merges runs of spaces differently.
/// </remarks>
public sealed class ByteLevelBpeTokenizer : ITextTokenizer
{
    /// <summary>GPT-2's pre-tokenizer: contractions, then letter / digit / other runs each with one optional leading space, then whitespace.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer bpe;
    private readonly TokenIndex index;

    /// <param name="addedTokens">Tokens matched whole before the regex runs (Hugging Face's added tokens: &lt;|endoftext|&gt; …); they may lie outside <paramref name="vocab"/>.</param>
    internal ByteLevelBpeTokenizer(Dictionary<string, int> vocab, IReadOnlyList<string> merges, Dictionary<string, int> addedTokens,
        string pattern, SpecialTokenNames names, string source, string description)
    {
        if (ByteLevelAlphabet.FirstMissingByte(vocab) is int missing)
            throw new DataException($"{source}: byte 0x{missing:X2} ({VocabFiles.Quote(ByteLevelAlphabet.Symbols[missing].ToString())}) has no token, so some text could not be encoded; this is not a byte-level BPE vocabulary.");
        index = new TokenIndex(vocab.Concat(addedTokens));
        var regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        bpe = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = addedTokens,
            PreTokenizer = new RegexPreTokenizer(regex, addedTokens),
        });
        // GPT-2 names no special tokens in its config: <|endoftext|> is its BOS and EOS, and it has no PAD.
        int? endOfText = index.Find("<|endoftext|>");
        BosId = SpecialTokenNames.Resolve(names.Bos, "bos_token", index.Find) ?? endOfText;
        EosId = SpecialTokenNames.Resolve(names.Eos, "eos_token", index.Find) ?? endOfText;
        PadId = SpecialTokenNames.Resolve(names.Pad, "pad_token", index.Find);
        Description = description;
    }

    /// <summary>From vocab.json + merges.txt, the files GPT-2's slow tokenizer reads.</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(string vocabPath, string mergesPath, SpecialTokenNames names)
    {
        var vocab = VocabFiles.ReadVocabJson(vocabPath);
        var merges = VocabFiles.ReadMerges(mergesPath, vocab);
        // The slow tokenizer always treats <|endoftext|> as a special token when the vocabulary has it.
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in new[] { "<|endoftext|>", names.Bos?.Content, names.Eos?.Content, names.Pad?.Content })
            if (token is not null && vocab.TryGetValue(token, out int id)) added[token] = id;
        return new ByteLevelBpeTokenizer(vocab, merges, added, Gpt2Pattern, names, vocabPath,
            $"byte-level BPE from vocab.json + merges.txt ({vocab.Count} tokens, {merges.Count} merges)");
    }

    public string Description { get; }
    public int VocabSize => index.Size;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    public int[] Encode(string text) => [.. bpe.EncodeToIds(text)];

    public string Decode(ReadOnlySpan<int> ids)
    {
        index.CheckDecodable(ids);
        return bpe.Decode(ids.ToArray(), considerSpecialTokens: true);
    }

    public string TokenText(int id) => index.Text(id);

    public override string ToString() => Description;
}

using System.Text;

namespace SoftPrompt.Text;

/// <summary>Metaspace's prepend_scheme: put the replacement before every piece, only before the text's first, or never.</summary>
internal enum PrependScheme { Always, First, Never }

/// <summary>
/// Hugging Face's Metaspace pre-tokenizer (spaces become <paramref name="Replacement"/>, which is prepended and then
/// starts each piece when <paramref name="Split"/>), optionally after WhitespaceSplit (words without their white space).
/// </summary>
internal sealed record MetaspaceOptions(string Replacement, PrependScheme Prepend, bool Split, bool WhitespaceSplitFirst);

/// <summary>
/// A Unigram tokenizer.json (T5, mT5, flan-t5 repositories without spiece.model) giving Hugging Face's ids: added
/// tokens are cut out of the raw text, each stretch between them goes through the normalizers (Precompiled, Strip,
/// Replace), the Metaspace pre-tokenizer and Hugging Face's <see cref="UnigramModel"/>.
/// </summary>
public sealed class UnigramTokenizer : ITextTokenizer
{
    private readonly UnigramModel model;
    private readonly IReadOnlyList<Func<string, string>> normalizers;
    private readonly MetaspaceOptions metaspace;
    private readonly PrependScheme decoderPrepend;
    private readonly AddedTokenSplitter addedTokens;
    // The tokens matched after normalization, spelled as normalized (Hugging Face normalizes their content too).
    private readonly AddedTokenSplitter normalizedTokens;
    private readonly TokenIndex index;

    internal UnigramTokenizer(UnigramModel model, IReadOnlyList<Func<string, string>> normalizers, MetaspaceOptions metaspace,
        PrependScheme decoderPrepend, IReadOnlyList<AddedToken> addedTokens, TokenIndex index, SpecialTokenNames names,
        (string? First, string? Last) template, string description)
    {
        this.model = model;
        this.normalizers = normalizers;
        this.metaspace = metaspace;
        this.decoderPrepend = decoderPrepend;
        this.addedTokens = new AddedTokenSplitter(addedTokens.Where(t => !t.Normalized));
        normalizedTokens = new AddedTokenSplitter(addedTokens.Where(t => t.Normalized).Select(t => t with { Content = Normalize(t.Content) }));
        this.index = index;
        // A declared token wins; otherwise what the post-processor's template puts around the text (T5: "$A </s>"), and
        // the names T5's tokenizer class defaults to.
        BosId = SpecialTokenNames.Resolve(names.Bos, "bos_token", index.Find) ?? (template.First is { } bos ? index.Find(bos) : null);
        EosId = SpecialTokenNames.Resolve(names.Eos, "eos_token", index.Find) ?? index.Find(template.Last ?? "</s>");
        PadId = SpecialTokenNames.Resolve(names.Pad, "pad_token", index.Find) ?? index.Find("<pad>");
        Description = description;
    }

    public string Description { get; }
    public int VocabSize => index.Size;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? PadId { get; }

    public int[] Encode(string text) => addedTokens.Encode(text, EncodeBetweenAddedTokens);

    private void EncodeBetweenAddedTokens(ReadOnlySpan<char> segment, int offset, List<int> ids) =>
        normalizedTokens.Split(Normalize(segment.ToString()), ids, (piece, pieceOffset, pieceIds) => PreTokenize(piece, offset == 0 && pieceOffset == 0, pieceIds));

    private string Normalize(string text)
    {
        foreach (var normalize in normalizers) text = normalize(text);
        return text;
    }

    private void PreTokenize(ReadOnlySpan<char> piece, bool atStart, List<int> ids)
    {
        if (!metaspace.WhitespaceSplitFirst)
        {
            Metaspace(piece.ToString(), atStart, ids);
            return;
        }
        for (int start = 0, end; start < piece.Length; start = end)
        {
            while (start < piece.Length && char.IsWhiteSpace(piece[start])) start++;
            for (end = start; end < piece.Length && !char.IsWhiteSpace(piece[end]); end++) { }
            // The loader refuses prepend_scheme "first" here, so no word needs to know whether it starts the text.
            if (end > start) Metaspace(piece[start..end].ToString(), atStart: false, ids);
        }
    }

    /// <summary>Metaspace: spaces become the replacement, which is prepended (unless the piece starts with it) and, with split, starts each piece.</summary>
    private void Metaspace(string text, bool atStart, List<int> ids)
    {
        string mark = metaspace.Replacement;
        text = text.Replace(" ", mark, StringComparison.Ordinal);
        bool prepend = metaspace.Prepend == PrependScheme.Always || (metaspace.Prepend == PrependScheme.First && atStart);
        if (prepend && text.Length > 0 && !text.StartsWith(mark, StringComparison.Ordinal)) text = mark + text;
        if (!metaspace.Split)
        {
            model.Encode(text, ids);
            return;
        }
        for (int start = 0; start < text.Length;)
        {
            int next = text.IndexOf(mark, start + 1, StringComparison.Ordinal);
            if (next < 0) next = text.Length;
            model.Encode(text[start..next], ids);
            start = next;
        }
    }

    /// <summary>Hugging Face's Metaspace decoder: the replacement reads as a space, except in the first token unless prepend_scheme is never.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        index.CheckDecodable(ids);
        var text = new StringBuilder();
        for (int i = 0; i < ids.Length; i++)
        {
            string token = index.Text(ids[i]);
            text.Append(i == 0 && decoderPrepend != PrependScheme.Never
                ? token.Replace(metaspace.Replacement, "", StringComparison.Ordinal)
                : token.Replace(metaspace.Replacement, " ", StringComparison.Ordinal));
        }
        return text.ToString();
    }

    public string TokenText(int id) => index.Text(id);

    public override string ToString() => Description;
}

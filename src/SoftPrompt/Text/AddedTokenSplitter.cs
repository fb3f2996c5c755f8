using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;

namespace SoftPrompt.Text;

/// <summary>A token matched whole before normalization and pre-tokenization (Hugging Face's added tokens: &lt;|endoftext|&gt;, &lt;/s&gt;, [PAD] …).</summary>
/// <param name="StripLeft">lstrip: the match swallows white space before it.</param>
/// <param name="StripRight">rstrip: the match swallows white space after it.</param>
/// <param name="Normalized">Matched in the normalized text rather than the raw text (the Unigram path reads this; byte-level BPE tokenizers match every token in the raw text).</param>
internal sealed record AddedToken(string Content, int Id, bool StripLeft = false, bool StripRight = false, bool Normalized = false);

/// <summary>
/// Hugging Face's first encoding step for a tokenizer.json: the added tokens are found in the raw text (leftmost, longest
/// first) and become their ids; the model's pipeline encodes each stretch between them.
/// </summary>
internal sealed class AddedTokenSplitter
{
    /// <summary>Encodes one stretch of text between added tokens; <paramref name="offset"/> is where it starts in the text.</summary>
    public delegate void SegmentEncoder(ReadOnlySpan<char> segment, int offset, List<int> ids);

    private readonly Dictionary<string, AddedToken>.AlternateLookup<ReadOnlySpan<char>> tokens;
    private readonly Regex? pattern;

    public AddedTokenSplitter(IEnumerable<AddedToken> addedTokens)
    {
        var byContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var token in addedTokens)
            if (token.Content.Length > 0) byContent.TryAdd(token.Content, token);
        tokens = byContent.GetAlternateLookup<ReadOnlySpan<char>>();
        // Longest first: .NET takes the first alternative that matches, so this finds the leftmost-longest token as Hugging Face does.
        if (byContent.Count > 0)
            pattern = new Regex(string.Join("|", byContent.Keys.OrderByDescending(t => t.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
    }

    public int[] Encode(string text, SegmentEncoder between)
    {
        text = WithoutLoneSurrogates(text);
        var ids = new List<int>(text.Length / 3 + 4);
        Split(text, ids, between);
        return [.. ids];
    }

    /// <summary>Appends the ids of the tokens in <paramref name="text"/> and lets <paramref name="between"/> append those of the stretches between them.</summary>
    public void Split(string text, List<int> ids, SegmentEncoder between)
    {
        int start = 0;
        if (pattern is not null)
            foreach (var match in pattern.EnumerateMatches(text))
            {
                if (match.Index < start) continue; // swallowed by the previous token's rstrip
                var token = tokens[text.AsSpan(match.Index, match.Length)];
                int end = match.Index + match.Length;
                int tokenStart = match.Index;
                if (token.StripLeft) while (tokenStart > start && char.IsWhiteSpace(text[tokenStart - 1])) tokenStart--;
                if (token.StripRight) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
                if (tokenStart > start) between(text.AsSpan(start, tokenStart - start), start, ids);
                ids.Add(token.Id);
                start = end;
            }
        if (start < text.Length) between(text.AsSpan(start), start, ids);
    }

    /// <summary>An unpaired surrogate reaches Hugging Face as U+FFFD (text is UTF-8 there), so it is encoded as one.</summary>
    private static string WithoutLoneSurrogates(string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF')) return text;
        for (int i = 0, length; i < text.Length; i += length)
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out _, out length) != OperationStatus.Done)
                return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
        return text;
    }
}

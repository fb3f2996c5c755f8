using System.Runtime.InteropServices;
using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// SentencePiece's normalizer (normalizer.cc): the model's precompiled character map (T5's nmt_nfkc: NFKC plus the
/// removal of control characters), then the whitespace rules — drop leading, trailing and repeated spaces when
/// remove_extra_whitespaces is set, prepend the dummy-prefix space, spell spaces as ▁. Works on UTF-8 bytes as the
/// library does, so its longest-match rules apply to the same byte sequences.
/// </summary>
internal sealed class SentencePieceNormalizer
{
    private static readonly byte[] SpaceSymbol = "▁"u8.ToArray();

    private readonly SentencePieceModelSpec spec;
    private readonly byte[][] userDefined;
    private readonly PrecompiledCharsmap? charsmap;

    public SentencePieceNormalizer(SentencePieceModelSpec spec, IEnumerable<string> userDefinedPieces, string path)
    {
        this.spec = spec;
        userDefined = [.. userDefinedPieces.Select(Encoding.UTF8.GetBytes)];
        if (spec.PrecompiledCharsmap.Length > 0) charsmap = new PrecompiledCharsmap(spec.PrecompiledCharsmap, $"{path}: normalizer_spec.precompiled_charsmap");
    }

    /// <summary>The text as the model segments it: normalized, with ▁ for each space (when escape_whitespaces is set).</summary>
    public string Normalize(string text)
    {
        ReadOnlySpan<byte> input = Encoding.UTF8.GetBytes(text);
        var output = new List<byte>(input.Length * 3);
        ReadOnlySpan<byte> space = spec.EscapeWhitespaces ? SpaceSymbol : " "u8;
        if (spec.RemoveExtraWhitespaces)
            while (!input.IsEmpty && NormalizePrefix(input, out int consumed).SequenceEqual(" "u8)) input = input[consumed..];
        if (input.IsEmpty) return "";
        if (spec.AddDummyPrefix) output.AddRange(space);
        bool previousIsSpace = spec.RemoveExtraWhitespaces;
        while (!input.IsEmpty)
        {
            var piece = NormalizePrefix(input, out int consumed);
            // A space right after a space is dropped, even when a replacement begins with it.
            while (previousIsSpace && piece.StartsWith(" "u8)) piece = piece[1..];
            if (!piece.IsEmpty)
            {
                foreach (byte b in piece)
                    if (b == ' ') output.AddRange(space);
                    else output.Add(b);
                previousIsSpace = spec.RemoveExtraWhitespaces && piece[^1] == ' ';
            }
            input = input[consumed..];
        }
        if (spec.RemoveExtraWhitespaces)
            while (CollectionsMarshal.AsSpan(output).EndsWith(space)) output.RemoveRange(output.Count - space.Length, space.Length);
        return Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(output));
    }

    /// <summary>The normalized form of the input's first character (or longest matching rule), and how many input bytes it covers.</summary>
    private ReadOnlySpan<byte> NormalizePrefix(ReadOnlySpan<byte> input, out int consumed)
    {
        // User-defined pieces are never normalized.
        consumed = 0;
        foreach (byte[] piece in userDefined)
            if (piece.Length > consumed && input.StartsWith(piece)) consumed = piece.Length;
        if (consumed > 0) return input[..consumed];
        if (charsmap is not null && (consumed = charsmap.LongestRule(input, out var replacement)) > 0) return replacement;
        // Input comes from a .NET string, so it is valid UTF-8: the lead byte gives the character's length.
        consumed = Math.Min(input.Length, input[0] < 0x80 ? 1 : input[0] < 0xE0 ? 2 : input[0] < 0xF0 ? 3 : 4);
        return input[..consumed];
    }
}

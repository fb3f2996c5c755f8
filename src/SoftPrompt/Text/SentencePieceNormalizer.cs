using System.Buffers.Binary;
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
    private readonly uint[] trie = [];
    private readonly byte[] replacements = [];

    public SentencePieceNormalizer(SentencePieceModelSpec spec, IEnumerable<string> userDefinedPieces, string path)
    {
        this.spec = spec;
        userDefined = [.. userDefinedPieces.Select(Encoding.UTF8.GetBytes)];
        byte[] map = spec.PrecompiledCharsmap;
        if (map.Length == 0) return;
        // <trie size: uint32 LE><Darts double-array trie: uint32 LE units><NUL-terminated replacement strings>
        uint trieSize = map.Length > 4 ? BinaryPrimitives.ReadUInt32LittleEndian(map) : uint.MaxValue;
        if (trieSize >= map.Length - 4 || trieSize % 4 != 0)
            throw new DataException($"{path}: normalizer_spec.precompiled_charsmap is broken; the file is corrupt.");
        trie = new uint[trieSize / 4];
        for (int i = 0; i < trie.Length; i++) trie[i] = BinaryPrimitives.ReadUInt32LittleEndian(map.AsSpan(4 + 4 * i));
        replacements = map[(4 + (int)trieSize)..];
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
        consumed = LongestRule(input, out int offset);
        if (consumed > 0)
        {
            var rest = replacements.AsSpan(offset);
            int end = rest.IndexOf((byte)0);
            return end < 0 ? rest : rest[..end];
        }
        // Input comes from a .NET string, so it is valid UTF-8: the lead byte gives the character's length.
        consumed = Math.Min(input.Length, input[0] < 0x80 ? 1 : input[0] < 0xE0 ? 2 : input[0] < 0xF0 ? 3 : 4);
        return input[..consumed];
    }

    /// <summary>Darts-clone's commonPrefixSearch, keeping the longest match: its length in bytes and its replacement's offset.</summary>
    private int LongestRule(ReadOnlySpan<byte> key, out int offset)
    {
        offset = 0;
        if (trie.Length == 0) return 0;
        int longest = 0;
        uint node = Offset(trie[0]);
        for (int i = 0; i < key.Length; i++)
        {
            node ^= key[i];
            if (node >= trie.Length) return longest;
            uint unit = trie[node];
            // A unit's label is its low byte (leaf units carry the top bit, so they never match a byte).
            if ((unit & 0x800000FFu) != key[i]) return longest;
            node ^= Offset(unit);
            if ((unit >> 8 & 1) == 1 && node < trie.Length)
            {
                longest = i + 1;
                offset = (int)(trie[node] & 0x7FFFFFFFu);
            }
        }
        return longest;
    }

    private static uint Offset(uint unit) => unit >> 10 << (int)((unit & 1u << 9) >> 6);
}

using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// SentencePiece's precompiled_charsmap (spiece.model's normalizer_spec, and tokenizer.json's Precompiled normalizer,
/// base64): &lt;trie size: uint32 LE&gt;&lt;Darts-clone double-array trie: uint32 LE units&gt;&lt;NUL-terminated
/// replacement strings&gt;. The trie maps UTF-8 byte sequences to offsets of their replacements.
/// </summary>
internal sealed class PrecompiledCharsmap
{
    private readonly uint[] trie;
    private readonly byte[] replacements;

    /// <param name="where">The file and field, for the error message.</param>
    public PrecompiledCharsmap(byte[] map, string where)
    {
        uint trieSize = map.Length > 4 ? BinaryPrimitives.ReadUInt32LittleEndian(map) : uint.MaxValue;
        if (trieSize >= map.Length - 4 || trieSize % 4 != 0)
            throw new DataException($"{where} is broken; the file is corrupt.");
        trie = new uint[trieSize / 4];
        for (int i = 0; i < trie.Length; i++) trie[i] = BinaryPrimitives.ReadUInt32LittleEndian(map.AsSpan(4 + 4 * i));
        replacements = map[(4 + (int)trieSize)..];
    }

    /// <summary>Whether the replacement strings are UTF-8, as Hugging Face requires of the whole block.</summary>
    public bool ReplacementsAreUtf8 => System.Text.Unicode.Utf8.IsValid(replacements);

    /// <summary>sentencepiece's rule (normalizer.cc): the longest key that prefixes the input; 0 when none does.</summary>
    public int LongestRule(ReadOnlySpan<byte> key, out ReadOnlySpan<byte> replacement) => Search(key, longest: true, out replacement);

    /// <summary>Hugging Face's Precompiled.transform (spm_precompiled): the shortest key that prefixes the input; 0 when none does.</summary>
    public int ShortestRule(ReadOnlySpan<byte> key, out ReadOnlySpan<byte> replacement) => Search(key, longest: false, out replacement);

    /// <summary>
    /// Hugging Face's Precompiled normalizer: grapheme by grapheme, one shorter than 6 UTF-8 bytes is replaced whole by the
    /// rule of its shortest matching prefix; otherwise each character by its own rule. (This drops the combining marks of
    /// a grapheme whose first character has a rule, unlike sentencepiece's longest-match; Hugging Face keeps it for
    /// compatibility, so its ids depend on it.)
    /// </summary>
    public string NormalizeByGrapheme(string text)
    {
        var output = new StringBuilder(text.Length);
        Span<byte> small = stackalloc byte[8];
        for (int i = 0, length; i < text.Length; i += length)
        {
            length = StringInfo.GetNextTextElementLength(text.AsSpan(i));
            var grapheme = text.AsSpan(i, length);
            int byteCount = Encoding.UTF8.GetByteCount(grapheme);
            if (byteCount < 6)
            {
                Encoding.UTF8.GetBytes(grapheme, small);
                if (ShortestRule(small[..byteCount], out var replacement) > 0)
                {
                    output.Append(Encoding.UTF8.GetString(replacement));
                    continue;
                }
            }
            for (int c = 0, charLength; c < grapheme.Length; c += charLength)
            {
                charLength = char.IsHighSurrogate(grapheme[c]) && c + 1 < grapheme.Length && char.IsLowSurrogate(grapheme[c + 1]) ? 2 : 1;
                var character = grapheme.Slice(c, charLength);
                int count = Encoding.UTF8.GetBytes(character, small);
                if (ShortestRule(small[..count], out var replacement) > 0) output.Append(Encoding.UTF8.GetString(replacement));
                else output.Append(character);
            }
        }
        return output.ToString();
    }

    /// <summary>Darts-clone's commonPrefixSearch, stopping at the first match or going on to the last.</summary>
    private int Search(ReadOnlySpan<byte> key, bool longest, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        int found = 0;
        if (trie.Length == 0) return 0;
        uint node = Offset(trie[0]);
        for (int i = 0; i < key.Length; i++)
        {
            node ^= key[i];
            if (node >= trie.Length) break;
            uint unit = trie[node];
            // A unit's label is its low byte (leaf units carry the top bit, so they never match a byte).
            if ((unit & 0x800000FFu) != key[i]) break;
            node ^= Offset(unit);
            if ((unit >> 8 & 1) == 1 && node < trie.Length)
            {
                found = i + 1;
                replacement = At((int)(trie[node] & 0x7FFFFFFFu));
                if (!longest) break;
            }
        }
        return found;
    }

    private ReadOnlySpan<byte> At(int offset)
    {
        if (offset >= replacements.Length) return [];
        var rest = replacements.AsSpan(offset);
        int end = rest.IndexOf((byte)0);
        return end < 0 ? rest : rest[..end];
    }

    private static uint Offset(uint unit) => unit >> 10 << (int)((unit & 1u << 9) >> 6);
}

namespace SoftPrompt.Text;

/// <summary>
/// GPT-2's byte ⇄ printable-character table: byte-level BPE vocabularies spell every UTF-8 byte as one
/// visible character so that merges never see whitespace or control bytes (space is 'Ġ', newline 'Ċ').
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>Symbols[b] is the vocabulary character standing for byte b.</summary>
    public static readonly char[] Symbols = Build();

    private static char[] Build()
    {
        var symbols = new char[256];
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            // Printable Latin-1 bytes keep their own character; the rest move up past U+00FF in byte order.
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            symbols[b] = printable ? (char)b : (char)(256 + shifted++);
        }
        return symbols;
    }

    /// <summary>The first byte whose symbol is missing from the vocabulary, or null when all 256 are present.</summary>
    public static int? FirstMissingByte(IReadOnlyDictionary<string, int> vocab)
    {
        for (int b = 0; b < 256; b++)
            if (!vocab.ContainsKey(Symbols[b].ToString())) return b;
        return null;
    }
}

namespace SoftPrompt.Text;

/// <summary>
/// GPT-2's byte ⇄ printable-character table: byte-level BPE vocabularies spell every UTF-8 byte as one
/// visible character so that merges never see whitespace or control bytes (space is 'Ġ', newline 'Ċ').
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>Symbols[b] is the vocabulary character standing for byte b.</summary>
    public static readonly char[] Symbols = Build();

    private static readonly short[] Bytes = BuildInverse();

    /// <summary>The byte a vocabulary character stands for, or -1 when it is not one of the 256 symbols.</summary>
    public static int ByteOf(char symbol) => symbol < Bytes.Length ? Bytes[symbol] : -1;

    private static short[] BuildInverse()
    {
        var bytes = new short[Symbols.Max() + 1];
        Array.Fill(bytes, (short)-1);
        for (int b = 0; b < 256; b++) bytes[Symbols[b]] = (short)b;
        return bytes;
    }

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

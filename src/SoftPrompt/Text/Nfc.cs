using System.Globalization;
using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// Unicode NFC exactly as Hugging Face tokenizers' NFC normalizer computes it (Qwen2's tokenizer.json has one): full
/// canonical decomposition, canonical ordering of combining marks, canonical composition, with the tables in
/// NfcTable.txt read off that library by tools/tokenizers/make_nfc_table.js (they are older than .NET's Unicode data).
/// Not string.Normalize: SoftPrompt runs with InvariantGlobalization, where it returns the text unchanged.
/// </summary>
internal static class Nfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, VCount = 21, TCount = 28, SCount = 11172;

    private static readonly Lazy<Tables> Data = new(Tables.Load);

    /// <summary>The NFC form of <paramref name="text"/>; the input itself when it is already in NFC.</summary>
    public static ReadOnlySpan<char> Apply(ReadOnlySpan<char> text)
    {
        // Below U+0300 nothing decomposes, combines or composes.
        if (!text.ContainsAnyExceptInRange('\0', '\u02FF')) return text;
        var tables = Data.Value;
        var codePoints = Decompose(text, tables);
        Order(codePoints, tables);
        int length = Compose(codePoints, tables);
        var result = new StringBuilder(text.Length);
        for (int i = 0; i < length; i++) result.Append(new Rune(codePoints[i]).ToString());
        return result.Equals(text) ? text : result.ToString();
    }

    private static List<int> Decompose(ReadOnlySpan<char> text, Tables tables)
    {
        var codePoints = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            int c = rune.Value;
            if (c is >= SBase and < SBase + SCount)
            {
                int s = c - SBase;
                codePoints.Add(LBase + s / (VCount * TCount));
                codePoints.Add(VBase + s % (VCount * TCount) / TCount);
                if (s % TCount != 0) codePoints.Add(TBase + s % TCount);
            }
            else if (tables.Decompositions.TryGetValue(c, out int[]? parts)) codePoints.AddRange(parts);
            else codePoints.Add(c);
        }
        return codePoints;
    }

    /// <summary>Stable sort of each run of combining marks by class.</summary>
    private static void Order(List<int> codePoints, Tables tables)
    {
        for (int i = 1; i < codePoints.Count; i++)
            for (int j = i; j > 0 && tables.Class(codePoints[j]) is int c and > 0 && tables.Class(codePoints[j - 1]) > c; j--)
                (codePoints[j - 1], codePoints[j]) = (codePoints[j], codePoints[j - 1]);
    }

    /// <summary>UAX #15's composition: each mark joins the last starter unless a mark of the same or higher class lies between.</summary>
    private static int Compose(List<int> codePoints, Tables tables)
    {
        if (codePoints.Count == 0) return 0;
        int starterAt = 0, written = 1;
        int lastClass = tables.Class(codePoints[0]) == 0 ? 0 : 256;
        for (int i = 1; i < codePoints.Count; i++)
        {
            int c = codePoints[i], cls = tables.Class(c);
            if ((lastClass < cls || lastClass == 0) && Composite(codePoints[starterAt], c, tables) is int composite)
            {
                codePoints[starterAt] = composite;
                continue;
            }
            if (cls == 0) starterAt = written;
            lastClass = cls;
            codePoints[written++] = c;
        }
        return written;
    }

    private static int? Composite(int first, int second, Tables tables)
    {
        if (first is >= LBase and < LBase + 19 && second is >= VBase and < VBase + VCount)
            return SBase + ((first - LBase) * VCount + second - VBase) * TCount;
        if (first is >= SBase and < SBase + SCount && (first - SBase) % TCount == 0 && second is > TBase and < TBase + TCount)
            return first + second - TBase;
        return tables.Compositions.TryGetValue((first, second), out int composite) ? composite : null;
    }

    private sealed record Tables(Dictionary<int, int> Classes, Dictionary<int, int[]> Decompositions, Dictionary<(int, int), int> Compositions)
    {
        public int Class(int codePoint) => Classes.GetValueOrDefault(codePoint);

        public static Tables Load()
        {
            using var stream = typeof(Nfc).Assembly.GetManifestResourceStream("SoftPrompt.Text.NfcTable.txt")
                ?? throw new InvalidOperationException("NfcTable.txt is not embedded in the SoftPrompt assembly.");
            using var reader = new StreamReader(stream);
            var tables = new Tables([], [], []);
            static int Hex(string s) => int.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
            while (reader.ReadLine() is string line)
            {
                string[] f = line.Split(' ');
                switch (f[0])
                {
                    case "c":
                        string[] range = f[1].Split('-');
                        for (int c = Hex(range[0]); c <= Hex(range[1]); c++) tables.Classes[c] = int.Parse(f[2], CultureInfo.InvariantCulture);
                        break;
                    case "d": tables.Decompositions[Hex(f[1])] = [.. f.Skip(2).Select(Hex)]; break;
                    case "p": tables.Compositions[(Hex(f[1]), Hex(f[2]))] = Hex(f[3]); break;
                }
            }
            return tables;
        }
    }
}

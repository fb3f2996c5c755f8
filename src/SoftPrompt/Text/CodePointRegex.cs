using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SoftPrompt.Text;

/// <summary>
/// Compiles a pre-tokenizer regex (written for Oniguruma, as Hugging Face runs it) so that .NET matches code points
/// rather than UTF-16 units. .NET sees a character outside the Basic Multilingual Plane as two surrogates that are
/// neither letters nor digits, so "𝑥" or "𝟏" would escape \p{L} and \p{N}. Every character set (\p{..}, \s, \w, \d,
/// their negations, [...] classes, '.') becomes its BMP part with surrogates removed, or'ed with the surrogate pairs
/// whose code point belongs to the set, worked out from <see cref="Rune.GetUnicodeCategory"/>. Surrogate pairs
/// written in the pattern become one unit, and case-insensitive 's' also matches 'ſ' as Oniguruma's case folding
/// does (the only difference from .NET's for the ASCII letters).
/// </summary>
internal static class CodePointRegex
{
    private const string SurrogateRange = @"\uD800-\uDFFF";
    private const string AnyPair = @"[\uD800-\uDBFF][\uDC00-\uDFFF]";

    /// <summary>The compiled regex; throws <see cref="ArgumentException"/> for syntax .NET rejects or this translation does not support.</summary>
    public static Regex Create(string pattern) => Compiled.GetOrAdd(pattern,
        p => new Regex(Translate(p), RegexOptions.Compiled | RegexOptions.CultureInvariant));

    // Translating walks a million code points per set and compiling takes a while; tokenizers share a handful of patterns.
    private static readonly ConcurrentDictionary<string, Regex> Compiled = new(StringComparer.Ordinal);

    public static string Translate(string pattern)
    {
        var output = new StringBuilder(pattern.Length * 2);
        var enclosingCase = new Stack<bool>();
        bool ignoreCase = false;
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length && CodePointSet.IsSetEscape(pattern[i + 1]))
            {
                var set = new CodePointSet(negated: false);
                i = set.AddEscape(pattern, i);
                output.Append(set.ToRegex());
            }
            else if (c == '\\' && i + 1 < pattern.Length && pattern[i + 1] == 'k')
                i = CopyThrough(pattern, i, '>', output);
            else if (c == '\\')
            {
                output.Append(pattern, i, Math.Min(2, pattern.Length - i));
                i += 2;
            }
            else if (c == '[')
            {
                var (set, end) = CodePointSet.ParseClass(pattern, i);
                output.Append(set.ToRegex());
                i = end;
            }
            else if (c == '.')
            {
                // Atomic, so that backtracking never splits a pair between '.' and what follows.
                output.Append("(?>").Append(AnyPair).Append("|.)");
                i++;
            }
            else if (c == '(')
                i = OpenGroup(pattern, i, output, enclosingCase, ref ignoreCase);
            else if (c == ')')
            {
                if (enclosingCase.Count > 0) ignoreCase = enclosingCase.Pop();
                output.Append(c);
                i++;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < pattern.Length && char.IsLowSurrogate(pattern[i + 1]))
            {
                output.Append("(?:").Append(c).Append(pattern[i + 1]).Append(')');
                i += 2;
            }
            else
            {
                if (ignoreCase && c is 's' or 'S') output.Append("[sSſ]");
                else output.Append(c);
                i++;
            }
        }
        return output.ToString();
    }

    /// <summary>Copies a group opening, tracking where case-insensitivity is switched on or off: (?i:…), (?-i), (?&lt;name&gt;…).</summary>
    private static int OpenGroup(string pattern, int i, StringBuilder output, Stack<bool> enclosingCase, ref bool ignoreCase)
    {
        enclosingCase.Push(ignoreCase);
        if (i + 1 >= pattern.Length || pattern[i + 1] != '?')
        {
            output.Append('(');
            return i + 1;
        }
        int j = i + 2;
        if (j < pattern.Length && pattern[j] is '<' or '\'' && j + 1 < pattern.Length && pattern[j + 1] is not ('=' or '!'))
            return CopyThrough(pattern, i, pattern[j] == '<' ? '>' : '\'', output);
        bool on = true, flags = ignoreCase;
        while (j < pattern.Length && (char.IsAsciiLetter(pattern[j]) || pattern[j] == '-'))
        {
            if (pattern[j] == '-') on = false;
            else if (pattern[j] == 'i') flags = on;
            j++;
        }
        if (j < pattern.Length && pattern[j] is ':' or ')') ignoreCase = flags;
        if (j < pattern.Length && pattern[j] == ')')
        {
            // "(?i)" opens no group: it switches the option until the enclosing group closes.
            enclosingCase.Pop();
            j++;
        }
        output.Append(pattern, i, j - i);
        return j;
    }

    private static int CopyThrough(string pattern, int i, char last, StringBuilder output)
    {
        int end = pattern.IndexOf(last, i + 2);
        end = end < 0 ? pattern.Length : end + 1;
        output.Append(pattern, i, end - i);
        return end;
    }

    /// <summary>
    /// One character set: the .NET class text for its BMP part plus a membership test for any code point, used for the
    /// astral planes (and by tests, over the BMP, to check it agrees with .NET).
    /// </summary>
    internal sealed class CodePointSet(bool negated)
    {
        private readonly StringBuilder bmpClass = new();
        private readonly List<Func<int, bool>> members = [];

        public static bool IsSetEscape(char c) => c is 'p' or 'P' or 's' or 'S' or 'd' or 'D' or 'w' or 'W';

        public bool Contains(int codePoint)
        {
            foreach (var member in members)
                if (member(codePoint)) return !negated;
            return negated;
        }

        /// <summary>Parses "[…]" starting at <paramref name="start"/>; returns the set and the index after its ']'.</summary>
        public static (CodePointSet Set, int End) ParseClass(string pattern, int start)
        {
            int i = start + 1;
            bool negated = i < pattern.Length && pattern[i] == '^';
            if (negated) i++;
            var set = new CodePointSet(negated);
            bool first = true;
            while (true)
            {
                if (i >= pattern.Length) throw new ArgumentException($"unterminated character class at offset {start}");
                char c = pattern[i];
                if (c == ']' && !first) return (set, i + 1);
                first = false;
                if (c == '-' && i + 1 < pattern.Length && pattern[i + 1] == '[')
                    throw new ArgumentException($"character class subtraction (offset {i}) is not supported");
                if (c == '[' || (c == '&' && i + 1 < pattern.Length && pattern[i + 1] == '&'))
                    throw new ArgumentException($"nested character classes and class intersection (offset {i}) are not supported");
                if (c == '\\' && i + 1 < pattern.Length && IsSetEscape(pattern[i + 1]))
                {
                    i = set.AddEscape(pattern, i);
                    continue;
                }
                int low = ReadLiteral(pattern, ref i);
                int high = low;
                if (i + 1 < pattern.Length && pattern[i] == '-' && pattern[i + 1] is not (']' or '['))
                {
                    i++;
                    high = ReadLiteral(pattern, ref i);
                    if (high < low) throw new ArgumentException($"character range in reverse order at offset {i}");
                }
                set.AddRange(low, high);
            }
        }

        /// <summary>Adds \p{…}, \P{…}, \s, \S, \d, \D, \w or \W at <paramref name="i"/>; returns the index after it.</summary>
        public int AddEscape(string pattern, int i)
        {
            char kind = pattern[i + 1];
            int end = i + 2;
            Func<int, bool> member;
            if (kind is 'p' or 'P')
            {
                int close = pattern.IndexOf('}', i);
                if (i + 2 >= pattern.Length || pattern[i + 2] != '{' || close < 0) throw new ArgumentException($"malformed \\{kind} at offset {i}");
                string name = pattern[(i + 3)..close];
                end = close + 1;
                member = Category(name);
            }
            else member = char.ToLowerInvariant(kind) switch
            {
                's' => _ => false, // no code point outside the BMP is white space
                'd' => cp => Rune.GetUnicodeCategory(new Rune(cp)) == UnicodeCategory.DecimalDigitNumber,
                _ => cp => IsWordCategory(Rune.GetUnicodeCategory(new Rune(cp))),
            };
            bmpClass.Append(pattern, i, end - i);
            members.Add(char.IsUpper(kind) ? cp => !member(cp) : member);
            return end;
        }

        private void AddRange(int low, int high)
        {
            if (low <= 0xFFFF) bmpClass.Append($@"\u{low:X4}-\u{Math.Min(high, 0xFFFF):X4}");
            members.Add(cp => cp >= low && cp <= high);
        }

        /// <summary>A .NET category name (L, Lu, Nd …) as a test on any code point; block names (IsGreek …) cover only the BMP.</summary>
        private static Func<int, bool> Category(string name)
        {
            bool[] included = [.. CategoryNames.Select(n => name.Length is 1 or 2 && n.StartsWith(name, StringComparison.Ordinal))];
            return cp => included[(int)Rune.GetUnicodeCategory(new Rune(cp))];
        }

        // .NET's \w: letters, non-spacing and spacing marks, decimal digits and connector punctuation.
        private static bool IsWordCategory(UnicodeCategory category) => category is <= UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;

        // Indexed by UnicodeCategory.
        private static readonly string[] CategoryNames =
            ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co",
             "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Cn"];

        /// <summary>One literal code point of a class (a character, an escape, or a surrogate pair written out).</summary>
        private static int ReadLiteral(string pattern, ref int i)
        {
            char c = pattern[i++];
            if (char.IsHighSurrogate(c) && i < pattern.Length && char.IsLowSurrogate(pattern[i])) return char.ConvertToUtf32(c, pattern[i++]);
            if (c != '\\') return c;
            if (i >= pattern.Length) throw new ArgumentException("pattern ends with a backslash");
            char e = pattern[i++];
            switch (e)
            {
                case 'n': return '\n';
                case 'r': return '\r';
                case 't': return '\t';
                case 'f': return '\f';
                case 'v': return '\v';
                case 'a': return '\a';
                case 'e': return '\u001B';
                case 'b': return '\b';
                case 'x': return Hex(pattern, ref i, 2);
                case 'u': return Hex(pattern, ref i, 4);
                case 'c': return i < pattern.Length ? char.ToUpperInvariant(pattern[i++]) % 32 : throw new ArgumentException("pattern ends after \\c");
                case >= '0' and <= '7':
                    int value = e - '0';
                    for (int k = 0; k < 2 && i < pattern.Length && pattern[i] is >= '0' and <= '7'; k++) value = value * 8 + pattern[i++] - '0';
                    return value;
                default:
                    if (char.IsAsciiLetterOrDigit(e)) throw new ArgumentException($"escape \\{e} in a character class is not supported");
                    return e;
            }
        }

        private static int Hex(string pattern, ref int i, int digits)
        {
            if (i + digits > pattern.Length || !int.TryParse(pattern.AsSpan(i, digits), NumberStyles.AllowHexSpecifier, null, out int value))
                throw new ArgumentException($"malformed hexadecimal escape at offset {i}");
            i += digits;
            return value;
        }

        /// <summary>[BMP part without surrogates] | surrogate pairs of the member code points above U+FFFF.</summary>
        public string ToRegex()
        {
            string bmp = bmpClass.Length == 0
                ? (negated ? $"[^{SurrogateRange}]" : "")
                : $"[{(negated ? "^" : "")}{bmpClass}-[{SurrogateRange}]]";
            string astral = AstralPairs();
            if (astral.Length == 0) return bmp.Length == 0 ? "(?!)" : bmp;
            return bmp.Length == 0 ? $"(?:{astral})" : $"(?:{bmp}|{astral})";
        }

        /// <summary>
        /// The member code points above U+FFFF as "[high surrogates][low surrogates]" alternatives; consecutive high
        /// surrogates with the same low-surrogate ranges share one alternative, so whole planes stay short.
        /// </summary>
        private string AstralPairs()
        {
            var alternatives = new List<(int FirstHigh, int LastHigh, string Lows)>();
            var lows = new StringBuilder();
            for (int high = 0xD800; high <= 0xDBFF; high++)
            {
                lows.Clear();
                int firstCodePoint = 0x10000 + ((high - 0xD800) << 10);
                int runStart = -1;
                for (int low = 0; low <= 0x400; low++)
                {
                    bool member = low < 0x400 && Contains(firstCodePoint + low);
                    if (member && runStart < 0) runStart = low;
                    if (!member && runStart >= 0)
                    {
                        lows.Append($@"\u{0xDC00 + runStart:X4}");
                        if (low - 1 > runStart) lows.Append($@"-\u{0xDC00 + low - 1:X4}");
                        runStart = -1;
                    }
                }
                if (lows.Length == 0) continue;
                string text = lows.ToString();
                if (alternatives.Count > 0 && alternatives[^1].LastHigh == high - 1 && alternatives[^1].Lows == text)
                    alternatives[^1] = alternatives[^1] with { LastHigh = high };
                else alternatives.Add((high, high, text));
            }
            return string.Join("|", alternatives.Select(a =>
                (a.FirstHigh == a.LastHigh ? $@"\u{a.FirstHigh:X4}" : $@"[\u{a.FirstHigh:X4}-\u{a.LastHigh:X4}]") + $"[{a.Lows}]"));
        }
    }
}

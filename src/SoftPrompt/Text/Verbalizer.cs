using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// Maps a classification column's raw values to label texts ("0=negative,1=positive"); a label's index is its
/// position in the list. In a spec, "\," "\=" and "\\" write a literal comma, equals sign and backslash.
/// </summary>
public sealed class Verbalizer
{
    private readonly Dictionary<string, int> indexOf;

    public Verbalizer(IReadOnlyList<(string Value, string Text)> labels)
    {
        if (labels.Count < 2) throw new DataException($"labels: {labels.Count} given; classification needs at least two (e.g. `labels` 0=negative,1=positive).");
        indexOf = new Dictionary<string, int>(StringComparer.Ordinal);
        var texts = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < labels.Count; i++)
        {
            var (value, text) = labels[i];
            if (value.Length == 0 || text.Length == 0) throw new DataException($"labels: entry {i + 1} (\"{value}={text}\") needs both a value and a label text.");
            if (!indexOf.TryAdd(value, i)) throw new DataException($"labels: value \"{value}\" is listed twice.");
            if (!texts.Add(text)) throw new DataException($"labels: label text \"{text}\" is used twice; rank classification needs distinct labels.");
        }
        Values = [.. labels.Select(l => l.Value)];
        Texts = [.. labels.Select(l => l.Text)];
    }

    /// <summary>Raw column values, in label-index order.</summary>
    public IReadOnlyList<string> Values { get; }
    /// <summary>Label texts the model learns to produce, in label-index order.</summary>
    public IReadOnlyList<string> Texts { get; }

    /// <summary>The label index of a raw value (surrounding whitespace ignored), or null when it is not listed.</summary>
    public int? IndexOf(string value) => indexOf.TryGetValue(value.Trim(), out int i) ? i : null;

    /// <summary>Parses "value=text,value=text,…"; whitespace around values and texts is trimmed.</summary>
    public static Verbalizer Parse(string spec)
    {
        var labels = new List<(string, string)>();
        foreach (string entry in SplitUnescaped(spec, ','))
        {
            var halves = SplitUnescaped(entry, '=');
            if (halves.Count != 2) throw new DataException($"labels \"{spec}\": entry \"{entry}\" must be value=text (write \\= for a literal '=').");
            labels.Add((Unescape(halves[0]).Trim(), Unescape(halves[1]).Trim()));
        }
        return new Verbalizer(labels);
    }

    public override string ToString() => string.Join(",", Values.Zip(Texts, (v, t) => $"{v}={t}"));

    // Splits on separators not preceded by a backslash, keeping escapes for Unescape.
    private static List<string> SplitUnescaped(string text, char separator)
    {
        var pieces = new List<string>();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\') { i++; continue; }
            if (text[i] == separator) { pieces.Add(text[start..i]); start = i + 1; }
        }
        pieces.Add(text[start..]);
        return pieces;
    }

    private static string Unescape(string text)
    {
        var result = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length) i++;
            result.Append(text[i]);
        }
        return result.ToString();
    }
}

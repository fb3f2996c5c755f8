using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// An input template such as "sentence: {sentence}\nanswer:". {name} is replaced by the row's column; "{{" and "}}"
/// are literal braces; \n, \t and \\ are a newline, a tab and a backslash, so templates can be written on a command line.
/// </summary>
public sealed class InputTemplate
{
    private readonly List<(string Text, bool IsColumn)> parts;

    private InputTemplate(string text, List<(string Text, bool IsColumn)> parts)
    {
        Text = text;
        this.parts = parts;
        Columns = [.. parts.Where(p => p.IsColumn).Select(p => p.Text).Distinct()];
    }

    /// <summary>The template as written.</summary>
    public string Text { get; }
    /// <summary>The columns it uses, each once, in order of first use.</summary>
    public IReadOnlyList<string> Columns { get; }

    public static InputTemplate Parse(string template)
    {
        var parts = new List<(string Text, bool IsColumn)>();
        var literal = new StringBuilder();
        for (int i = 0; i < template.Length; i++)
        {
            char c = template[i];
            char next = i + 1 < template.Length ? template[i + 1] : '\0';
            if ((c == '{' && next == '{') || (c == '}' && next == '}')) { literal.Append(c); i++; }
            else if (c == '\\' && next is 'n' or 't' or '\\') { literal.Append(next switch { 'n' => '\n', 't' => '\t', _ => '\\' }); i++; }
            else if (c == '}') throw Error(template, $"'}}' at position {i + 1} closes nothing; write '}}}}' for a literal brace");
            else if (c == '{')
            {
                int close = template.IndexOf('}', i + 1);
                if (close < 0) throw Error(template, $"'{{' at position {i + 1} is never closed; write '{{{{' for a literal brace");
                string column = template[(i + 1)..close];
                if (column.Length == 0 || column.Contains('{'))
                    throw Error(template, $"'{{' at position {i + 1} does not enclose a column name; write {{column}}, or '{{{{' for a literal brace");
                if (literal.Length > 0) { parts.Add((literal.ToString(), false)); literal.Clear(); }
                parts.Add((column, true));
                i = close;
            }
            else literal.Append(c);
        }
        if (literal.Length > 0) parts.Add((literal.ToString(), false));
        var result = new InputTemplate(template, parts);
        if (result.Columns.Count == 0) throw Error(template, "it uses no column; put the input column in braces, e.g. \"sentence: {sentence}\"");
        return result;
    }

    /// <summary>The template with each {column} replaced by <paramref name="value"/>(column).</summary>
    public string Render(Func<string, string> value)
    {
        var text = new StringBuilder();
        foreach (var (part, isColumn) in parts) text.Append(isColumn ? value(part) : part);
        return text.ToString();
    }

    public override string ToString() => Text;

    private static DataException Error(string template, string problem) => new($"template \"{template}\": {problem}.");
}

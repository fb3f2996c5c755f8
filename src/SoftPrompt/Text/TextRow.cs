namespace SoftPrompt.Text;

/// <summary>
/// One data row as strings. <see cref="Number"/> is 1-based over data rows (a CSV header is not counted; for JSONL it
/// is the line number); <see cref="Line"/> is where the row starts in a text file, 0 for Parquet. A null value is a
/// JSON/Parquet null or a key the row lacks.
/// </summary>
public sealed record TextRow(int Number, int Line, IReadOnlyDictionary<string, string?> Values)
{
    /// <summary>"file, row N" (plus "(line L)" where the line differs), the prefix of every message about this row.</summary>
    public string Where(string path) => Line > 0 && Line != Number ? $"{path}, row {Number} (line {Line})" : $"{path}, row {Number}";
}

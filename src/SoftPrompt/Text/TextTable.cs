namespace SoftPrompt.Text;

/// <summary>A data file read as rows of string columns, with the rows skipped as malformed (when skipping was asked for).</summary>
public sealed class TextTable
{
    public TextTable(string path, IReadOnlyList<string> columns, IReadOnlyList<TextRow> rows, int skippedRows, IReadOnlyList<string> skipReasons)
    {
        Path = path;
        Columns = columns;
        Rows = rows;
        SkippedRows = skippedRows;
        SkipReasons = skipReasons;
    }

    public string Path { get; }
    /// <summary>Column names in file order (JSONL: order of first appearance).</summary>
    public IReadOnlyList<string> Columns { get; }
    public IReadOnlyList<TextRow> Rows { get; }
    public int SkippedRows { get; }
    /// <summary>The first few skipped rows' messages, to show the user why.</summary>
    public IReadOnlyList<string> SkipReasons { get; }

    /// <summary>Reads .jsonl/.ndjson, .csv, .tsv or .parquet by extension.</summary>
    /// <param name="skipBadRows">Skip and count malformed rows instead of failing on the first one.</param>
    public static TextTable Read(string path, bool skipBadRows = false)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: data file not found.");
        var bad = new BadRows(skipBadRows);
        return System.IO.Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".jsonl" or ".ndjson" => JsonlTable.Read(path, bad),
            ".csv" => CsvTable.Read(path, ',', bad),
            ".tsv" => CsvTable.Read(path, '\t', bad),
            ".parquet" => ParquetTable.Read(path, bad),
            string other => throw new DataException($"{path}: unknown data format \"{other}\"; use .jsonl, .csv, .tsv or .parquet."),
        };
    }

    /// <summary>The error for a column the file lacks, naming the columns it has.</summary>
    public DataException MissingColumn(string column, string role) =>
        new($"{Path}: no column \"{column}\" (needed for {role}); the file has: {string.Join(", ", Columns.Select(c => $"\"{c}\""))}.");
}

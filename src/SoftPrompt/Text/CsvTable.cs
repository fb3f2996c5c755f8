namespace SoftPrompt.Text;

/// <summary>CSV/TSV with a header row (RFC 4180 quoting, see <see cref="CsvRecordReader"/>); every row must have the header's field count.</summary>
internal static class CsvTable
{
    public static TextTable Read(string path, char delimiter, BadRows bad)
    {
        using var text = StrictUtf8.Open(path);
        var reader = new CsvRecordReader(text, delimiter);
        var fields = new List<string>();
        string[] header;
        try
        {
            if (!reader.Read(fields)) throw new DataException($"{path}: the file is empty; expected a header row naming the columns.");
            header = [.. fields];
        }
        catch (FormatException e) { throw new DataException($"{path}, header (line {reader.RecordLine}): {e.Message}.", e); }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in header)
            if (!seen.Add(name)) throw new DataException($"{path}: the header names column \"{name}\" twice; column names must be unique.");

        string separator = delimiter == '\t' ? "tab" : $"'{delimiter}'";
        var rows = new List<TextRow>();
        for (int number = 1; ; number++)
        {
            try
            {
                if (!reader.Read(fields)) break;
            }
            catch (FormatException e)
            {
                bad.Report($"{path}, row {number} (line {reader.RecordLine}): {e.Message}.", e);
                continue;
            }
                var row = new TextRow(number, reader.RecordLine, new Dictionary<string, string?>(header.Length, StringComparer.Ordinal));
            if (fields.Count != header.Length)
            {
                bad.Report($"{row.Where(path)}: {fields.Count} fields but the header has {header.Length}; quote fields that contain a {separator} or a line break.");
                continue;
            }
            var values = (Dictionary<string, string?>)row.Values;
            for (int i = 0; i < header.Length; i++) values[header[i]] = fields[i];
            rows.Add(row);
        }
        return new TextTable(path, header, rows, bad.Count, bad.Reasons);
    }
}

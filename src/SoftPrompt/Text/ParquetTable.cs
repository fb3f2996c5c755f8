using System.Globalization;
using System.Text;
using Parquet.Schema;
using Parquet.Serialization;

namespace SoftPrompt.Text;

/// <summary>
/// Parquet (as Hugging Face datasets export it) via Parquet.Net: the flat top-level columns become string columns
/// (numbers in invariant culture, booleans as "true"/"false", binary as UTF-8); list/struct/map columns are left out.
/// </summary>
internal static class ParquetTable
{
    public static TextTable Read(string path, BadRows bad)
    {
        DeserializationResult<Dictionary<string, object>> result;
        try
        {
            using var stream = File.OpenRead(path);
            // The package is async-only; a console host has no synchronization context to deadlock on.
            result = ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not DataException)
        {
            throw new DataException($"{path}: not a readable Parquet file ({e.GetType().Name}: {e.Message}).", e);
        }
        string[] columns = [.. result.Schema.Fields.OfType<DataField>().Where(f => !f.IsArray).Select(f => f.Name)];
        var rows = new List<TextRow>(result.Data.Count);
        for (int i = 0; i < result.Data.Count; i++)
        {
            var values = new Dictionary<string, string?>(columns.Length, StringComparer.Ordinal);
            foreach (string column in columns)
                values[column] = result.Data[i].TryGetValue(column, out object? value) ? Scalar(value) : null;
            rows.Add(new TextRow(i + 1, 0, values));
        }
        return new TextTable(path, columns, rows, bad.Count, bad.Reasons);
    }

    private static string? Scalar(object? value) => value switch
    {
        null => null,
        string s => s,
        bool b => b ? "true" : "false",
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };
}

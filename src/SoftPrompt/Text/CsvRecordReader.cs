using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// Splits RFC 4180 text into records: fields separated by the delimiter, records by CRLF or LF; a field that starts
/// with '"' is quoted, may hold delimiters and line breaks, and writes '"' as '""'. Lenient where files in the wild
/// are: a '"' inside an unquoted field is a literal character, and blank lines between records are ignored.
/// A malformed record raises <see cref="FormatException"/> after consuming it, so reading can go on.
/// </summary>
internal sealed class CsvRecordReader(TextReader reader, char delimiter)
{
    private enum End { Field, Record, File }

    private readonly StringBuilder field = new();
    private int line = 1;

    /// <summary>Line on which the last record returned (or rejected) started.</summary>
    public int RecordLine { get; private set; }

    public bool Read(List<string> fields)
    {
        fields.Clear();
        while (reader.Peek() is '\r' or '\n') ConsumeLineBreak();
        if (reader.Peek() < 0) return false;
        RecordLine = line;
        End end;
        do
        {
            end = reader.Peek() == '"' ? ReadQuoted() : ReadUnquoted();
            fields.Add(field.ToString());
        }
        while (end == End.Field);
        return true;
    }

    private End ReadUnquoted()
    {
        field.Clear();
        while (true)
        {
            int c = reader.Peek();
            if (c < 0) return End.File;
            if (c == delimiter) { reader.Read(); return End.Field; }
            if (c is '\r' or '\n') { ConsumeLineBreak(); return End.Record; }
            field.Append((char)reader.Read());
        }
    }

    private End ReadQuoted()
    {
        field.Clear();
        int opened = line;
        reader.Read();
        while (true)
        {
            int c = reader.Read();
            if (c < 0) throw new FormatException($"the quoted field opened on line {opened} never closes; a '\"' inside a quoted field must be written '\"\"'");
            if (c == '"')
            {
                if (reader.Peek() != '"') break;
                reader.Read();
            }
            else if (c == '\n') line++;
            field.Append((char)c);
        }
        int next = reader.Peek();
        if (next < 0) return End.File;
        if (next == delimiter) { reader.Read(); return End.Field; }
        if (next is '\r' or '\n') { ConsumeLineBreak(); return End.Record; }
        SkipRestOfLine();
        throw new FormatException($"unexpected {Describe(next)} after the closing '\"' of a quoted field; quote the whole field and double the '\"' inside it");
    }

    private void ConsumeLineBreak()
    {
        if (reader.Read() == '\r' && reader.Peek() == '\n') reader.Read();
        line++;
    }

    private void SkipRestOfLine()
    {
        while (reader.Peek() is >= 0 and not ('\r' or '\n')) reader.Read();
        if (reader.Peek() >= 0) ConsumeLineBreak();
    }

    private static string Describe(int c) => c == '\t' ? "tab" : $"'{(char)c}'";
}

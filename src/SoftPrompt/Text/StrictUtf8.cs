using System.Text;
using System.Text.Unicode;

namespace SoftPrompt.Text;

/// <summary>
/// Opens a data file as UTF-8 text after checking every line is valid UTF-8, so mojibake is reported with its line
/// instead of being trained on. (A strict decoder on a buffered stream fails at the buffer, not the line.)
/// </summary>
internal static class StrictUtf8
{
    public static TextReader Open(string path)
    {
        ReadOnlySpan<byte> bytes = File.ReadAllBytes(path);
        if (bytes.StartsWith(Encoding.UTF8.Preamble)) bytes = bytes[Encoding.UTF8.Preamble.Length..];
        var rest = bytes;
        // '\n' (0x0A) never occurs inside a multi-byte sequence, so lines can be checked one by one.
        for (int line = 1; ; line++)
        {
            int end = rest.IndexOf((byte)'\n');
            if (!Utf8.IsValid(end < 0 ? rest : rest[..end]))
                throw new DataException($"{path}, line {line}: not valid UTF-8 text; save the file as UTF-8.");
            if (end < 0) break;
            rest = rest[(end + 1)..];
        }
        return new StringReader(Encoding.UTF8.GetString(bytes));
    }
}

using System.Globalization;
using System.Text;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// Keeps an error message on one line: the library's errors quote what they found in the file (a pickle string, a zip
/// entry name, a JSON token), and a crafted file put newlines and terminal control bytes there (found by
/// `./build.sh fuzz`). Control characters and line separators are written as escapes (\n, \r, \u001b); tabs stay.
/// </summary>
internal static class OneLineMessage
{
    public static string Escape(string message)
    {
        if (!message.Any(NeedsEscape)) return message;
        var text = new StringBuilder(message.Length + 16);
        foreach (char c in message)
        {
            if (!NeedsEscape(c)) text.Append(c);
            else if (c == '\n') text.Append("\\n");
            else if (c == '\r') text.Append("\\r");
            else text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
        }
        return text.ToString();
    }

    private static bool NeedsEscape(char c) => c != '\t' && (char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085');
}

using System.Runtime.InteropServices;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// Generation ends for a row once the text of the tokens it generated (decoded by <see cref="Tokenizer"/>) contains one of
/// <see cref="Values"/>; its prompt and input are never looked at, so a stop string they contain does not stop it. The
/// answer's tokens end with the one that completed the stop string (a stop string may end inside a token);
/// <see cref="Cut"/> then removes the stop string and what follows from the answer's text.
/// </summary>
public sealed record StopStrings(IReadOnlyList<string> Values, ITextTokenizer Tokenizer)
{
    public void Validate()
    {
        if (Values is null || Values.Count == 0) throw new ArgumentException("`StopStrings.Values` is empty: give at least one stop string (or pass no stop strings).");
        foreach (string? value in Values)
            if (string.IsNullOrEmpty(value)) throw new ArgumentException("`StopStrings.Values` holds an empty stop string, which every text contains; give non-empty strings.");
        ArgumentNullException.ThrowIfNull(Tokenizer);
    }

    /// <summary>Whether the text of <paramref name="generated"/> contains a stop string.</summary>
    public bool Ends(List<int> generated) => First(Tokenizer.Decode(CollectionsMarshal.AsSpan(generated))) >= 0;

    /// <summary><paramref name="text"/> up to its first stop string (all of it when it holds none).</summary>
    public string Cut(string text)
    {
        int at = First(text);
        return at < 0 ? text : text[..at];
    }

    /// <summary>Where the earliest stop string in <paramref name="text"/> begins, or −1.</summary>
    private int First(string text)
    {
        int first = -1;
        foreach (string value in Values)
        {
            int at = text.IndexOf(value, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        return first;
    }
}

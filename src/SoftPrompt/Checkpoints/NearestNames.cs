namespace SoftPrompt.Checkpoints;

/// <summary>"Did you mean" for missing tensors: the few present names closest by edit distance.</summary>
internal static class NearestNames
{
    public static string Describe(string wanted, IEnumerable<string> present, int count = 3)
    {
        var ranked = present
            .Select(name => (name, distance: EditDistance(wanted, name)))
            .OrderBy(p => p.distance).ThenBy(p => p.name, StringComparer.Ordinal)
            .Take(count)
            .Select(p => $"'{p.name}'")
            .ToList();
        return ranked.Count == 0 ? "the file holds no tensors" : "nearest names present: " + string.Join(", ", ranked);
    }

    /// <summary>Levenshtein distance with two rows; only runs on the error path.</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitute, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}

using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// The token pool of "sampled vocab" initialisation: the paper draws prompt vectors from the embeddings of the 5,000
/// most common tokens. T5's SentencePiece vocabulary is ordered by frequency, so there it is ids 0..4999; for other
/// vocabularies the frequencies are counted in the training data (inputs and targets).
/// </summary>
public static class VocabularySampler
{
    public const int PoolSize = 5000;

    /// <summary>The <paramref name="size"/> most frequent token ids of <paramref name="examples"/>, most frequent first (ties: lower id first).</summary>
    public static int[] MostFrequent(IReadOnlyList<TokenizedExample> examples, int vocabSize, ISet<int> excluded, int size = PoolSize)
    {
        var counts = new long[vocabSize];
        foreach (var example in examples)
        {
            foreach (int id in example.Input) counts[id]++;
            foreach (int id in example.Target) counts[id]++;
        }
        var ids = new List<int>();
        for (int id = 0; id < vocabSize; id++)
            if (counts[id] > 0 && !excluded.Contains(id)) ids.Add(id);
        ids.Sort((a, b) => counts[a] != counts[b] ? counts[b].CompareTo(counts[a]) : a.CompareTo(b));
        return [.. ids.Take(size)];
    }

    /// <summary>Ids 0 .. min(size, vocabSize) − 1 without the excluded ones (special tokens), for a frequency-ordered vocabulary.</summary>
    public static int[] FirstIds(int vocabSize, ISet<int> excluded, int size = PoolSize) =>
        [.. Enumerable.Range(0, Math.Min(size, vocabSize)).Where(id => !excluded.Contains(id))];

    /// <summary>
    /// <paramref name="count"/> ids drawn from <paramref name="pool"/> without replacement; when the pool is smaller
    /// than the count, the draw starts over on a fresh permutation (each id then repeats as evenly as possible).
    /// </summary>
    public static int[] Draw(int[] pool, int count, Random random)
    {
        if (pool.Length == 0) throw new ArgumentException("The vocabulary pool is empty; there is no token to sample a prompt vector from.", nameof(pool));
        var drawn = new int[count];
        var permutation = (int[])pool.Clone();
        for (int start = 0; start < count; start += pool.Length)
        {
            int take = Math.Min(pool.Length, count - start);
            // Partial Fisher–Yates: the first `take` slots become a uniform draw without replacement.
            for (int i = 0; i < take; i++)
            {
                int j = random.Next(i, permutation.Length);
                (permutation[i], permutation[j]) = (permutation[j], permutation[i]);
                drawn[start + i] = permutation[i];
            }
        }
        return drawn;
    }
}

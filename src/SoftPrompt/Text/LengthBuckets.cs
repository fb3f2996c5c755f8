namespace SoftPrompt.Text;

/// <summary>
/// Epoch orders that batch rows of similar length together, so padding to each batch's longest row stays small:
/// shuffle, cut into chunks of <c>chunkBatches × batchSize</c> rows, sort each chunk by length, cut the chunks into
/// batches, shuffle the batches. Chunking keeps the order random across the data while rows in one batch are close in
/// length. Pass <see cref="NextEpoch"/> to <c>BatchSampler</c>; it assumes the sampler takes rows in order and calls it
/// once per epoch.
/// </summary>
public sealed class LengthBuckets
{
    public const int DefaultChunkBatches = 50;

    private readonly int[] lengths;
    private readonly int batchSize;
    private readonly int chunkRows;
    private readonly Random random;
    private long consumed;

    public LengthBuckets(IReadOnlyList<TokenizedExample> examples, int batchSize, int seed, int chunkBatches = DefaultChunkBatches)
    {
        if (examples.Count == 0) throw new ArgumentException("No examples to order.", nameof(examples));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkBatches);
        lengths = new int[examples.Count];
        for (int i = 0; i < lengths.Length; i++) lengths[i] = examples[i].Length;
        this.batchSize = batchSize;
        chunkRows = chunkBatches * batchSize;
        random = new Random(seed);
    }

    /// <summary>A permutation of the example indices for the next epoch.</summary>
    public int[] NextEpoch()
    {
        int n = lengths.Length;
        var rows = new int[n];
        for (int i = 0; i < n; i++) rows[i] = i;
        random.Shuffle(rows);

        // The sampler wraps epochs mid-batch: the first `lead` rows of this epoch finish the batch the last one
        // started, and the last `tail` rows start the next. Only the rows between fall on batch boundaries.
        int lead = (int)((batchSize - consumed % batchSize) % batchSize);
        lead = Math.Min(lead, n);
        int tail = (n - lead) % batchSize;
        consumed += n;

        int middle = n - lead - tail;
        var span = rows.AsSpan(lead, middle);
        for (int start = 0; start < middle; start += chunkRows)
        {
            var chunk = span.Slice(start, Math.Min(chunkRows, middle - start));
            chunk.Sort((a, b) => lengths[a].CompareTo(lengths[b]));
        }
        var batches = new int[middle / batchSize];
        for (int i = 0; i < batches.Length; i++) batches[i] = i;
        random.Shuffle(batches);
        var order = new int[n];
        rows.AsSpan(0, lead).CopyTo(order);
        for (int i = 0; i < batches.Length; i++)
            span.Slice(batches[i] * batchSize, batchSize).CopyTo(order.AsSpan(lead + i * batchSize));
        rows.AsSpan(n - tail).CopyTo(order.AsSpan(n - tail));
        return order;
    }

    /// <summary>Padding tokens (Σ over batches of rows × longest − Σ lengths) when batches are taken in this order; for tests and logs.</summary>
    public static long Padding(IReadOnlyList<TokenizedExample> examples, IReadOnlyList<int> order, int batchSize)
    {
        long padding = 0;
        for (int start = 0; start < order.Count; start += batchSize)
        {
            int end = Math.Min(start + batchSize, order.Count);
            int longest = 0;
            long sum = 0;
            for (int i = start; i < end; i++)
            {
                int length = examples[order[i]].Length;
                longest = Math.Max(longest, length);
                sum += length;
            }
            padding += (long)longest * (end - start) - sum;
        }
        return padding;
    }
}

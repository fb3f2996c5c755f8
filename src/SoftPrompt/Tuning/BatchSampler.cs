using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// Walks the examples in epochs (a seeded shuffle per epoch unless disabled) and fills a reused
/// <see cref="TokenBatch"/> with the next BatchSize rows, wrapping into the next epoch.
/// </summary>
public sealed class BatchSampler
{
    private readonly IReadOnlyList<TokenizedExample> examples;
    private readonly int[] order;
    private readonly int[] picks;
    private readonly Random random;
    private readonly bool shuffle;
    private int cursor;

    public BatchSampler(IReadOnlyList<TokenizedExample> examples, int batchSize, int promptLength, int seed, bool shuffle)
    {
        if (examples.Count == 0) throw new ArgumentException("No examples to sample from.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        this.examples = examples;
        this.shuffle = shuffle;
        random = new Random(seed);
        order = Enumerable.Range(0, examples.Count).ToArray();
        int longest = examples.Max(e => e.Length);
        Batch = new TokenBatch(batchSize, longest, promptLength);
        picks = new int[batchSize];
        BeginEpoch();
    }

    public TokenBatch Batch { get; }
    public int Epoch { get; private set; }

    /// <summary>Fills <see cref="Batch"/> with the next rows, all using prompt <paramref name="promptIndex"/>.</summary>
    public TokenBatch Next(int promptIndex = 0)
    {
        int rows = Batch.RowCapacity;
        int longest = 0;
        for (int i = 0; i < rows; i++)
        {
            if (cursor == order.Length) BeginEpoch();
            picks[i] = order[cursor++];
            longest = Math.Max(longest, examples[picks[i]].Length);
        }
        Batch.Reset(longest);
        for (int i = 0; i < rows; i++)
        {
            var example = examples[picks[i]];
            Batch.AddRow(example.Input, example.Target, promptIndex);
        }
        return Batch;
    }

    private void BeginEpoch()
    {
        if (cursor != 0) Epoch++;
        cursor = 0;
        if (shuffle) random.Shuffle(order);
    }
}

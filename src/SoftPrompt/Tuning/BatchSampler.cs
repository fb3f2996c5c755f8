using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// Walks the examples in epochs and fills a reused <see cref="TokenBatch"/> with the next BatchSize rows, wrapping
/// into the next epoch. Each epoch's order comes from a seeded shuffle (or file order when shuffling is off), or
/// from a caller's order source such as <see cref="LengthBuckets.NextEpoch"/>.
/// Its place in the data is <see cref="Position"/> (epoch, cursor): a fresh sampler built with the same
/// examples and order source reaches the same place with <see cref="Seek"/>, which replays the epoch orders, so a
/// resumed run draws exactly the batches an uninterrupted one would.
/// <para>
/// With K prompts per example (an ensemble run) every drawn example becomes K consecutive rows, one per prompt, so
/// one forward pass trains all K prompts on the same examples; the batch then holds BatchSize × K rows and the epoch
/// order does not depend on K (each prompt sees the batches a single-prompt run with the same seed sees).
/// </para>
/// <para>
/// With a <see cref="Shard"/> of a process group every rank draws the whole global batch (so <see cref="Position"/>
/// stays global and a checkpoint resumes under any number of processes) but fills <see cref="Batch"/> with its own
/// contiguous part of it only.
/// </para>
/// </summary>
public sealed class BatchSampler
{
    private readonly IReadOnlyList<TokenizedExample> examples;
    private readonly Func<int[]> nextOrder;
    private readonly int[] rows;
    private readonly bool[] seen;
    private readonly int promptsPerExample;
    private int[] order;
    private int cursor;

    public BatchSampler(IReadOnlyList<TokenizedExample> examples, int batchSize, int promptLength, int seed, bool shuffle, int promptsPerExample = 1)
        : this(examples, batchSize, promptLength, ShuffledOrders(examples.Count, seed, shuffle), promptsPerExample) { }

    /// <param name="epochOrder">Called once per epoch (the first time here); must return a permutation of 0 .. examples.Count − 1.</param>
    /// <param name="promptsPerExample">Rows per drawn example, one per prompt (K of an ensemble run).</param>
    public BatchSampler(IReadOnlyList<TokenizedExample> examples, int batchSize, int promptLength, Func<int[]> epochOrder, int promptsPerExample = 1)
    {
        if (examples.Count == 0) throw new ArgumentException("No examples to sample from.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(promptsPerExample);
        this.examples = examples;
        this.promptsPerExample = promptsPerExample;
        nextOrder = epochOrder;
        int longest = examples.Max(e => e.Length);
        TokenBatch.CheckSize((long)batchSize * promptsPerExample, longest, promptLength);
        rows = new int[batchSize];
        seen = new bool[examples.Count];
        Batch = new TokenBatch(batchSize * promptsPerExample, longest, promptLength);
        order = NextOrder();
    }

    public TokenBatch Batch { get; }
    /// <summary>This process's part of every batch (the whole batch by default).</summary>
    public BatchShard Shard { get; init; } = BatchShard.Whole;
    public int Epoch { get; private set; }
    /// <summary>Examples in one epoch.</summary>
    public int ExampleCount => examples.Count;
    /// <summary>Examples per batch (each is <see cref="PromptsPerExample"/> rows).</summary>
    public int BatchSize => rows.Length;
    public int PromptsPerExample => promptsPerExample;

    /// <summary>Where the next batch starts: the epoch and how many rows of its order were taken.</summary>
    public SamplerPosition Position => new(Epoch, cursor);

    /// <summary>
    /// Moves a fresh sampler to <paramref name="position"/> by replaying the epoch orders before it (the order
    /// sources are seeded, so the replay draws the same permutations).
    /// </summary>
    public void Seek(SamplerPosition position)
    {
        if (Epoch != 0 || cursor != 0) throw new InvalidOperationException("Seek needs a fresh sampler; build a new one with the same seed and data.");
        if (position.Epoch < 0 || position.Cursor < 0 || position.Cursor > order.Length)
            throw new ArgumentOutOfRangeException(nameof(position), $"Sampler position {position} does not fit {order.Length} examples.");
        for (int e = 0; e < position.Epoch; e++) order = NextOrder();
        Epoch = position.Epoch;
        cursor = position.Cursor;
    }

    /// <summary>
    /// Fills <see cref="Batch"/> with the next examples, each as rows using prompts <paramref name="promptIndex"/> ..
    /// <paramref name="promptIndex"/> + <see cref="PromptsPerExample"/> − 1 (just <paramref name="promptIndex"/> for one prompt per example).
    /// </summary>
    public TokenBatch Next(int promptIndex = 0)
    {
        // Choose the rows before sizing the batch: rows past an epoch's end come from the next epoch's order.
        for (int i = 0; i < rows.Length; i++)
        {
            if (cursor == order.Length)
            {
                order = NextOrder();
                cursor = 0;
                Epoch++;
            }
            rows[i] = order[cursor++];
        }
        var mine = rows.AsSpan(Shard.Start(rows.Length), Shard.Count(rows.Length));
        int longest = 0;
        foreach (int row in mine) longest = Math.Max(longest, examples[row].Length);
        Batch.Reset(longest);
        foreach (int row in mine)
        {
            var example = examples[row];
            for (int k = 0; k < promptsPerExample; k++) Batch.AddRow(example.Input, example.Target, promptIndex + k);
        }
        return Batch;
    }

    private int[] NextOrder()
    {
        int[] next = nextOrder();
        if (next.Length != examples.Count) throw new InvalidOperationException($"Epoch order has {next.Length} entries for {examples.Count} examples.");
        Array.Clear(seen);
        foreach (int row in next)
        {
            if ((uint)row >= (uint)seen.Length || seen[row]) throw new InvalidOperationException($"Epoch order is not a permutation (row {row}).");
            seen[row] = true;
        }
        return next;
    }

    // One array reshuffled in place each epoch: the sequence the sampler has always produced for a seed.
    private static Func<int[]> ShuffledOrders(int count, int seed, bool shuffle)
    {
        var random = new Random(seed);
        int[] order = Enumerable.Range(0, count).ToArray();
        return () =>
        {
            if (shuffle) random.Shuffle(order);
            return order;
        };
    }
}

/// <summary>A sampler's place in its data: <see cref="Cursor"/> rows of epoch <see cref="Epoch"/>'s order are taken.</summary>
public readonly record struct SamplerPosition(int Epoch, int Cursor)
{
    public override string ToString() => $"epoch {Epoch}, row {Cursor}";
}

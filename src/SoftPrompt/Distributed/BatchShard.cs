namespace SoftPrompt.Distributed;

/// <summary>
/// Rank <see cref="Rank"/>'s part of a global batch split over <see cref="Size"/> processes: contiguous rows, the first
/// ranks taking one row fewer when the batch does not divide (5 rows over 3 ranks: 1, 2, 2). Every rank walks the same
/// global order, so which examples a step sees does not depend on the number of processes.
/// </summary>
public readonly record struct BatchShard(int Rank, int Size)
{
    public static BatchShard Whole => new(0, 1);

    /// <summary>The first row of this rank's part of a batch of <paramref name="batchSize"/> rows.</summary>
    public int Start(int batchSize) => (int)((long)batchSize * Rank / Size);

    /// <summary>How many rows of a batch of <paramref name="batchSize"/> rows this rank takes.</summary>
    public int Count(int batchSize) => (int)((long)batchSize * (Rank + 1) / Size) - Start(batchSize);

    /// <summary>"3+3+2": each rank's rows of a batch.</summary>
    public static string Describe(int batchSize, int size) =>
        string.Join("+", Enumerable.Range(0, size).Select(r => new BatchShard(r, size).Count(batchSize)));
}

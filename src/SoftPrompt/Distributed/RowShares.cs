using System.Numerics;

namespace SoftPrompt.Distributed;

/// <summary>
/// Sharded evaluation: each rank of a group scores or decodes a contiguous share of a list of rows (the split of
/// <see cref="BatchShard"/>, in whole units: the evaluation's batches), and the per-row results are gathered back in row
/// order on every rank. The metrics are then computed from the whole list by the single-process code. Shares of whole
/// batches run exactly the batches one process runs, so scores and losses are the single process's bit for bit (a
/// row's float result depends on the batch it shares: its padded length). Every rank must call with the same rows.
/// </summary>
public static class RowShares
{
    /// <summary>
    /// Rank <paramref name="rank"/>'s rows of <paramref name="rows"/> over <paramref name="size"/> ranks, in whole units
    /// of <paramref name="unit"/> rows counted from row 0 (the last unit may be partial): its first row and count.
    /// </summary>
    public static (int Start, int Count) Of(int rank, int size, int rows, int unit = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(unit);
        var shard = new BatchShard(rank, size);
        int units = (int)(((long)rows + unit - 1) / unit);
        long start = (long)shard.Start(units) * unit, end = Math.Min(rows, (long)(shard.Start(units) + shard.Count(units)) * unit);
        return ((int)start, (int)Math.Max(0, end - start));
    }

    /// <summary>This process's share (see <see cref="Of(int, int, int, int)"/>).</summary>
    public static (int Start, int Count) Mine(IProcessGroup group, int rows, int unit = 1) => Of(group.Rank, group.Size, rows, unit);

    /// <summary>
    /// Fills every rank's share of <paramref name="values"/> (one value per row, this rank's share already written) from
    /// its rank. Integers and floats pass through double exactly.
    /// </summary>
    public static void AllGather<T>(IProcessGroup group, Span<T> values, int unit = 1) where T : unmanaged, INumberBase<T>
    {
        if (group.Size == 1) return;
        int widest = 0;
        for (int r = 0; r < group.Size; r++) widest = Math.Max(widest, Of(r, group.Size, values.Length, unit).Count);
        var (start, count) = Mine(group, values.Length, unit);
        var mine = new double[widest];
        for (int i = 0; i < count; i++) mine[i] = double.CreateChecked(values[start + i]);
        var all = new double[widest * group.Size];
        group.AllGather(mine, all);
        for (int r = 0; r < group.Size; r++)
        {
            var (from, rows) = Of(r, group.Size, values.Length, unit);
            for (int i = 0; i < rows; i++) values[from + i] = T.CreateChecked(all[r * widest + i]);
        }
    }

    /// <summary>
    /// Runs <paramref name="produce"/> on this rank's share of <paramref name="rows"/> rows (its first row and count; it
    /// returns one token list per row of the share) and returns every row's list, in row order, on every rank.
    /// </summary>
    public static int[][] AllGather(IProcessGroup group, int rows, Func<int, int, int[][]> produce)
    {
        if (group.Size == 1) return produce(0, rows);
        var (start, count) = Mine(group, rows);
        var mine = produce(start, count);
        if (mine.Length != count) throw new InvalidOperationException($"A share of {count} rows produced {mine.Length} answers.");
        var lengths = new int[rows];
        for (int i = 0; i < count; i++) lengths[start + i] = mine[i].Length;
        AllGather<int>(group, lengths);

        long longest = 0;
        for (int r = 0; r < group.Size; r++)
        {
            var (from, n) = Of(r, group.Size, rows);
            long tokens = 0;
            for (int i = 0; i < n; i++) tokens += lengths[from + i];
            longest = Math.Max(longest, tokens);
        }
        if (longest * group.Size > Array.MaxLength) throw new ArgumentException($"{rows} answers of up to {longest} tokens per rank are too many to gather.");
        var flat = new double[longest];
        int at = 0;
        foreach (var answer in mine)
            foreach (int token in answer) flat[at++] = token;
        var all = new double[longest * group.Size];
        group.AllGather(flat, all);

        var answers = new int[rows][];
        for (int r = 0; r < group.Size; r++)
        {
            var (from, n) = Of(r, group.Size, rows);
            long read = r * longest;
            for (int i = from; i < from + n; i++)
            {
                var answer = answers[i] = new int[lengths[i]];
                for (int t = 0; t < answer.Length; t++) answer[t] = (int)all[read++];
            }
        }
        return answers;
    }
}

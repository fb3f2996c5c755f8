using SoftPrompt.Distributed;
using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>One row to score: the model reads prompt <see cref="PromptIndex"/>, then <see cref="Input"/>, then <see cref="Target"/>.</summary>
public readonly record struct ScoreRow(int[] Input, int[] Target, int PromptIndex);

/// <summary>
/// Teacher-forced scores of rows that may each use another of the engine's prompts, in mixed batches: rows of
/// different prompts share a forward pass (<see cref="TokenBatch.PromptIndex"/> per row).
/// </summary>
public static class RowScorer
{
    /// <summary>
    /// Writes each row's summed target log-likelihood (and, when <paramref name="greedyMatches"/> is not empty, how many
    /// of its targets are the argmax). Batches hold at most <paramref name="batchSize"/> rows but never split a group of
    /// <paramref name="groupSize"/> consecutive rows, so the rows of one example (over its prompts and labels) run in one
    /// forward pass; a group larger than the batch size gets a batch of its own. With a <paramref name="processes"/>
    /// group of N &gt; 1 each rank scores a contiguous share of whole batches and every rank receives all the scores
    /// (<see cref="RowShares"/>).
    /// </summary>
    public static void Score(IPromptEngine engine, IReadOnlyList<ScoreRow> rows, Span<float> logLikelihood, Span<int> greedyMatches = default,
        int batchSize = 32, int groupSize = 1, IProcessGroup? processes = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(groupSize);
        if (logLikelihood.Length < rows.Count) throw new ArgumentException($"{rows.Count} rows need {rows.Count} scores, the span holds {logLikelihood.Length}.");
        bool wantMatches = !greedyMatches.IsEmpty;
        if (wantMatches && greedyMatches.Length < rows.Count) throw new ArgumentException($"{rows.Count} rows need {rows.Count} match counts, the span holds {greedyMatches.Length}.");
        if (rows.Count == 0) return;
        if (rows.Count % groupSize != 0) throw new ArgumentException($"{rows.Count} rows are not whole groups of {groupSize}.");
        int capacity = Math.Max(groupSize, batchSize / groupSize * groupSize);
        if (processes is { Size: > 1 })
        {
            // Whole batches per rank: each runs exactly the batches one process would, so the scores are the same bits.
            var (start, count) = RowShares.Mine(processes, rows.Count, capacity);
            var share = new ArraySegment<ScoreRow>([.. rows], start, count);
            Score(engine, share, logLikelihood.Slice(start, count), wantMatches ? greedyMatches.Slice(start, count) : default, batchSize, groupSize);
            RowShares.AllGather(processes, logLikelihood[..rows.Count], capacity);
            if (wantMatches) RowShares.AllGather(processes, greedyMatches[..rows.Count], capacity);
            return;
        }

        int longest = 0;
        foreach (var row in rows) longest = Math.Max(longest, row.Input.Length + row.Target.Length);
        var batch = new TokenBatch(Math.Min(capacity, rows.Count), longest, engine.RequirePrompts());
        var scores = new float[batch.RowCapacity];
        var matches = new int[batch.RowCapacity];
        for (int start = 0; start < rows.Count; start += batch.RowCapacity)
        {
            int count = Math.Min(batch.RowCapacity, rows.Count - start);
            int length = 0;
            for (int r = 0; r < count; r++) length = Math.Max(length, rows[start + r].Input.Length + rows[start + r].Target.Length);
            batch.Reset(length);
            for (int r = 0; r < count; r++)
            {
                var row = rows[start + r];
                batch.AddRow(row.Input, row.Target, row.PromptIndex);
            }
            engine.ScoreRows(batch, scores, wantMatches ? matches : default);
            scores.AsSpan(0, count).CopyTo(logLikelihood[start..]);
            if (wantMatches) matches.AsSpan(0, count).CopyTo(greedyMatches[start..]);
        }
    }

    /// <summary>
    /// Whether a decoded <paramref name="answer"/> is the <paramref name="target"/>: it starts with it. Decoding stops at
    /// the stop token, so for a target that ends with it (EOS) this is equality; for one that does not, the tokens
    /// decoded after the target do not count — the same rows teacher-forced exact match counts.
    /// </summary>
    public static bool Matches(ReadOnlySpan<int> answer, ReadOnlySpan<int> target) => answer.StartsWith(target);
}

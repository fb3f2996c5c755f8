using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>Scores of real greedy generation against the targets: exact match and SQuAD-style token F1.</summary>
public static class GenerationMetrics
{
    /// <summary>
    /// Decodes every example's input greedily (up to the longest target, stopping at <paramref name="stopToken"/>
    /// when given, else cut at each row's own target length) and compares the decoded ids with the target ids.
    /// Token F1 is the harmonic mean of precision and recall of the multiset of decoded vs target tokens, per row,
    /// averaged over rows (the stop token is left out of both sides). With a <paramref name="processes"/> group of
    /// N &gt; 1 each rank decodes a contiguous share of the examples and every rank scores all the answers.
    /// </summary>
    public static GenerationResult Score(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, int? stopToken, int batchSize = 32,
        IProcessGroup? processes = null)
    {
        if (examples.Count == 0) throw new ArgumentException("No examples to evaluate.");
        int longest = examples.Max(e => e.Target.Length);
        var inputs = examples.Select(e => e.Input).ToArray();
        var decoded = engine is IEncoderDecoderEngine seq2seq
            ? RowShares.AllGather(processes ?? SingleProcess.Instance, inputs.Length,
                (start, count) => Seq2SeqGreedyDecoder.Generate(seq2seq, new ArraySegment<int[]>(inputs, start, count), longest, stopToken, batchSize))
            : GreedyDecoder.Generate(engine, inputs, new int[inputs.Length], longest, stopToken, batchSize, useCache: true, processes: processes);
        int exact = 0;
        double f1 = 0;
        for (int i = 0; i < examples.Count; i++)
        {
            var target = examples[i].Target;
            var answer = stopToken is null ? decoded[i].Take(target.Length).ToArray() : decoded[i];
            if (answer.AsSpan().SequenceEqual(target)) exact++;
            f1 += TokenF1(Strip(answer, stopToken), Strip(target, stopToken));
        }
        return new GenerationResult(examples.Count, (double)exact / examples.Count, f1 / examples.Count, decoded);
    }

    private static int[] Strip(int[] ids, int? stopToken) => stopToken is { } stop ? ids.Where(id => id != stop).ToArray() : ids;

    public static double TokenF1(IReadOnlyList<int> predicted, IReadOnlyList<int> gold)
    {
        if (predicted.Count == 0 || gold.Count == 0) return predicted.Count == gold.Count ? 1 : 0;
        var counts = new Dictionary<int, int>();
        foreach (int id in gold) counts[id] = counts.GetValueOrDefault(id) + 1;
        int common = 0;
        foreach (int id in predicted)
        {
            if (counts.GetValueOrDefault(id) <= 0) continue;
            counts[id]--;
            common++;
        }
        if (common == 0) return 0;
        double precision = (double)common / predicted.Count, recall = (double)common / gold.Count;
        return 2 * precision * recall / (precision + recall);
    }
}

/// <summary>Exact match and mean token F1 over rows, with the decoded ids of each row.</summary>
public sealed record GenerationResult(int Rows, double ExactMatch, double TokenF1, int[][] Decoded);

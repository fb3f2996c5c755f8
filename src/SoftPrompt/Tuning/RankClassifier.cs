using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// What rank classification found: the predicted label per example, every (example, label) score, the metrics, and
/// from the gold rows the mean loss, exact match of greedy decoding and teacher-forced token accuracy.
/// </summary>
public sealed record RankClassificationResult(int[] Predictions, float[] Scores, int Labels, ClassificationMetrics Metrics,
    double ExactMatch, double TokenAccuracy, double MeanLoss)
{
    /// <summary>Summed log-likelihood of label <paramref name="label"/> for example <paramref name="example"/>.</summary>
    public float Score(int example, int label) => Scores[example * Labels + label];
}

/// <summary>
/// Rank classification (as T5 and the prompt-tuning paper evaluate classification): every label of the verbalizer is
/// scored by the summed log-likelihood of its target tokens after the example's input, and the best-scoring label is
/// the prediction (a tie goes to the label listed first). One batch row per (example, label), batched through
/// <see cref="IPromptEngine.ScoreRows"/>. Scores are sums, not per-token means, so a longer label pays for every token.
/// </summary>
public static class RankClassifier
{
    public static RankClassificationResult Evaluate(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, ClassificationTask task,
        int batchSize = 32, int promptIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (examples.Count == 0) throw new ArgumentException("No examples to classify.");
        if (task.GoldLabels.Length != examples.Count) throw new ArgumentException($"{task.GoldLabels.Length} gold labels for {examples.Count} examples.");
        int labels = task.LabelTokens.Count;
        int longestInput = examples.Max(e => e.Input.Length), longestLabel = task.LabelTokens.Max(l => l.Length);
        var batch = new TokenBatch(batchSize, longestInput + longestLabel, engine.RequirePrompts());
        var rowScores = new float[batchSize];
        var rowMatches = new int[batchSize];
        var scores = new float[examples.Count * labels];
        var matches = new int[examples.Count * labels];
        int pairs = examples.Count * labels;
        for (int start = 0; start < pairs; start += batchSize)
        {
            int rows = Math.Min(batchSize, pairs - start);
            int length = 0;
            for (int r = 0; r < rows; r++)
                length = Math.Max(length, examples[(start + r) / labels].Input.Length + task.LabelTokens[(start + r) % labels].Length);
            batch.Reset(length);
            for (int r = 0; r < rows; r++) batch.AddRow(examples[(start + r) / labels].Input, task.LabelTokens[(start + r) % labels], promptIndex);
            engine.ScoreRows(batch, rowScores, rowMatches);
            rowScores.AsSpan(0, rows).CopyTo(scores.AsSpan(start));
            rowMatches.AsSpan(0, rows).CopyTo(matches.AsSpan(start));
        }

        var predictions = new int[examples.Count];
        double goldLogLikelihood = 0;
        long goldTokens = 0, goldMatches = 0;
        int exact = 0;
        for (int i = 0; i < examples.Count; i++)
        {
            int best = 0;
            for (int l = 1; l < labels; l++)
                if (scores[i * labels + l] > scores[i * labels + best]) best = l;
            predictions[i] = best;
            int gold = task.GoldLabels[i];
            int goldLength = task.LabelTokens[gold].Length;
            goldLogLikelihood += scores[i * labels + gold];
            goldTokens += goldLength;
            goldMatches += matches[i * labels + gold];
            if (matches[i * labels + gold] == goldLength) exact++;
        }
        var metrics = ClassificationMetrics.From(task.GoldLabels, predictions, task.LabelTexts);
        return new RankClassificationResult(predictions, scores, labels, metrics, (double)exact / examples.Count,
            (double)goldMatches / goldTokens, -goldLogLikelihood / goldTokens);
    }
}

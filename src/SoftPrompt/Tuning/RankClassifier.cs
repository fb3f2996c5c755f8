using SoftPrompt.Distributed;
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
/// <see cref="RowScorer"/>. Scores are sums, not per-token means, so a longer label pays for every token.
/// </summary>
public static class RankClassifier
{
    /// <param name="processes">A group of N &gt; 1: each rank scores a contiguous share of the (example, label) batches, every rank gets the result.</param>
    public static RankClassificationResult Evaluate(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, ClassificationTask task,
        int batchSize = 32, int promptIndex = 0, IProcessGroup? processes = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (examples.Count == 0) throw new ArgumentException("No examples to classify.");
        if (task.GoldLabels.Length != examples.Count) throw new ArgumentException($"{task.GoldLabels.Length} gold labels for {examples.Count} examples.");
        int labels = task.LabelTokens.Count;
        var pairs = new ScoreRow[examples.Count * labels];
        for (int i = 0; i < pairs.Length; i++) pairs[i] = new ScoreRow(examples[i / labels].Input, task.LabelTokens[i % labels], promptIndex);
        var scores = new float[pairs.Length];
        var matches = new int[pairs.Length];
        RowScorer.Score(engine, pairs, scores, matches, batchSize, processes: processes);

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

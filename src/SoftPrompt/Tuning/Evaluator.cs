using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>Generation-style scores of a prompt over examples, in batches.</summary>
public static class Evaluator
{
    /// <summary>
    /// Exact match of greedy decoding: a row counts when every target token is the argmax of its teacher-forced
    /// logits (then greedy decoding reproduces the target exactly, stopping at its EOS). Also the teacher-forced token
    /// accuracy (targets whose argmax is right, over all targets) and the mean loss over target tokens.
    /// </summary>
    public static EvaluationResult ExactMatch(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, int batchSize = 32, int promptIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (examples.Count == 0) throw new ArgumentException("No examples to evaluate.");
        int longest = examples.Max(e => e.Length);
        var batch = new TokenBatch(batchSize, longest, engine.RequirePrompts());
        var scores = new float[batchSize];
        var matches = new int[batchSize];
        int exact = 0;
        double logLikelihood = 0;
        long targets = 0, matched = 0;
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            int rows = Math.Min(batchSize, examples.Count - start);
            int length = 0;
            for (int i = 0; i < rows; i++) length = Math.Max(length, examples[start + i].Length);
            batch.Reset(length);
            for (int i = 0; i < rows; i++) batch.AddRow(examples[start + i].Input, examples[start + i].Target, promptIndex);
            engine.ScoreRows(batch, scores, matches);
            for (int i = 0; i < rows; i++)
            {
                if (matches[i] == examples[start + i].Target.Length) exact++;
                logLikelihood += scores[i];
                targets += examples[start + i].Target.Length;
                matched += matches[i];
            }
        }
        return new EvaluationResult(examples.Count, (double)exact / examples.Count, -logLikelihood / targets, (double)matched / targets);
    }
}

/// <param name="Accuracy">Exact match of greedy decoding.</param>
/// <param name="TokenAccuracy">Teacher-forced: target tokens that are the argmax of their logits, over all target tokens.</param>
public readonly record struct EvaluationResult(int Rows, double Accuracy, double MeanLoss, double TokenAccuracy);

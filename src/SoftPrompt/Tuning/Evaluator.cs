using SoftPrompt.Distributed;
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
    /// <param name="processes">A group of N &gt; 1: each rank scores a contiguous share of the examples, every rank gets the result.</param>
    public static EvaluationResult ExactMatch(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, int batchSize = 32, int promptIndex = 0,
        IProcessGroup? processes = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (examples.Count == 0) throw new ArgumentException("No examples to evaluate.");
        var rows = new ScoreRow[examples.Count];
        for (int i = 0; i < rows.Length; i++) rows[i] = new ScoreRow(examples[i].Input, examples[i].Target, promptIndex);
        var scores = new float[rows.Length];
        var matches = new int[rows.Length];
        RowScorer.Score(engine, rows, scores, matches, batchSize, processes: processes);
        int exact = 0;
        double logLikelihood = 0;
        long targets = 0, matched = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            if (matches[i] == examples[i].Target.Length) exact++;
            logLikelihood += scores[i];
            targets += examples[i].Target.Length;
            matched += matches[i];
        }
        return new EvaluationResult(examples.Count, (double)exact / examples.Count, -logLikelihood / targets, (double)matched / targets);
    }
}

/// <param name="Accuracy">Exact match of greedy decoding.</param>
/// <param name="TokenAccuracy">Teacher-forced: target tokens that are the argmax of their logits, over all target tokens.</param>
public readonly record struct EvaluationResult(int Rows, double Accuracy, double MeanLoss, double TokenAccuracy);

using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>One prompt's, or one way of combining the prompts', score on a data set.</summary>
/// <param name="Accuracy">Rank classification accuracy, or exact match of the decoded answers.</param>
/// <param name="MacroF1">Classification only; NaN for generation.</param>
/// <param name="Loss">A single prompt's mean cross-entropy over the gold target tokens; NaN for the combined answers.</param>
public sealed record EnsembleScore(double Accuracy, double MacroF1, double Loss);

/// <summary>What <see cref="EnsembleEvaluator"/> found: each prompt alone, the majority vote and the mean probability.</summary>
/// <param name="MajorityAnswers">Per example: the majority vote's label index (classification), or index into <paramref name="Candidates"/>.</param>
/// <param name="Candidates">Generation: per example, the distinct answers the prompts decoded (in prompt order); null for classification.</param>
public sealed record EnsembleEvaluation(
    bool IsClassification,
    IReadOnlyList<EnsembleScore> Prompts,
    EnsembleScore Majority,
    EnsembleScore MeanProbability,
    int[] MajorityAnswers,
    int[] MeanProbabilityAnswers,
    IReadOnlyList<IReadOnlyList<int[]>>? Candidates)
{
    public int Examples => MajorityAnswers.Length;

    /// <summary>The best single prompt: highest accuracy, then lowest loss, then listed first.</summary>
    public int BestPrompt
    {
        get
        {
            int best = 0;
            for (int k = 1; k < Prompts.Count; k++)
                if (Prompts[k].Accuracy > Prompts[best].Accuracy || (Prompts[k].Accuracy == Prompts[best].Accuracy && Prompts[k].Loss < Prompts[best].Loss)) best = k;
            return best;
        }
    }
}

/// <summary>
/// Scores every prompt the engine holds on the same examples, and their ensemble (<see cref="EnsembleVote"/>). Each
/// example runs once as K rows, one per prompt (row promptIndex = k), in one forward pass: batches are whole examples.
/// Rank classification scores K × labels rows per example; generation scores the gold target under every prompt (the
/// loss, and whether teacher forcing reproduces it, in which case greedy decoding would too), greedy-decodes the
/// answers teacher forcing does not settle, then scores each distinct answer under every prompt (the candidates'
/// probabilities). With a process group of N &gt; 1 each rank scores and decodes a contiguous share of those rows and
/// every rank receives all of them (<see cref="RowShares"/>), so every rank computes the same evaluation.
/// </summary>
public static class EnsembleEvaluator
{
    public static EnsembleEvaluation Classify(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, ClassificationTask task, int batchSize = 32,
        IProcessGroup? processes = null)
    {
        int prompts = engine.PromptCount, labels = task.LabelTokens.Count, n = examples.Count;
        Check(engine, examples, batchSize);
        if (task.GoldLabels.Length != n) throw new ArgumentException($"{task.GoldLabels.Length} gold labels for {n} examples.");
        int group = prompts * labels;
        var rows = new ScoreRow[n * group];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < prompts; k++)
                for (int l = 0; l < labels; l++) rows[i * group + k * labels + l] = new ScoreRow(examples[i].Input, task.LabelTokens[l], k);
        var scores = new float[rows.Length];
        RowScorer.Score(engine, rows, scores, default, batchSize, group, processes);

        var perPrompt = new int[prompts][];
        for (int k = 0; k < prompts; k++) perPrompt[k] = new int[n];
        var goldLogLikelihood = new double[prompts];
        long goldTokens = 0;
        var majority = new int[n];
        var mean = new int[n];
        var votes = new int[prompts];
        var meanProbability = new double[labels];
        for (int i = 0; i < n; i++)
        {
            var table = scores.AsSpan(i * group, group);
            int gold = task.GoldLabels[i];
            for (int k = 0; k < prompts; k++)
            {
                votes[k] = perPrompt[k][i] = EnsembleVote.ArgMax(table.Slice(k * labels, labels));
                goldLogLikelihood[k] += table[k * labels + gold];
            }
            goldTokens += task.LabelTokens[gold].Length;
            (majority[i], mean[i]) = EnsembleVote.Decide(votes, table, labels, meanProbability);
        }

        var single = new EnsembleScore[prompts];
        for (int k = 0; k < prompts; k++)
        {
            var m = ClassificationMetrics.From(task.GoldLabels, perPrompt[k], task.LabelTexts);
            single[k] = new EnsembleScore(m.Accuracy, m.MacroF1, -goldLogLikelihood[k] / goldTokens);
        }
        var byVote = ClassificationMetrics.From(task.GoldLabels, majority, task.LabelTexts);
        var byMean = ClassificationMetrics.From(task.GoldLabels, mean, task.LabelTexts);
        return new EnsembleEvaluation(true, single, new EnsembleScore(byVote.Accuracy, byVote.MacroF1, double.NaN),
            new EnsembleScore(byMean.Accuracy, byMean.MacroF1, double.NaN), majority, mean, null);
    }

    /// <param name="stopToken">Where decoding stops (EOS); null: the token every target ends with, when no target holds it elsewhere (see <see cref="InferStopToken"/>).</param>
    public static EnsembleEvaluation Generate(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, int? stopToken = null, int batchSize = 32,
        IProcessGroup? processes = null)
    {
        int prompts = engine.PromptCount, n = examples.Count;
        Check(engine, examples, batchSize);
        stopToken ??= InferStopToken(examples);
        var gold = new ScoreRow[n * prompts];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < prompts; k++) gold[i * prompts + k] = new ScoreRow(examples[i].Input, examples[i].Target, k);
        var goldScores = new float[gold.Length];
        var goldMatches = new int[gold.Length];
        RowScorer.Score(engine, gold, goldScores, goldMatches, batchSize, prompts, processes);

        // A prompt whose teacher-forced argmaxes are the whole gold target (ending in the stop token, which it holds
        // nowhere else, and within the decoding limit) decodes exactly that target: only the other rows are decoded.
        var answers = new int[n * prompts][];
        int limit = GreedyDecoder.NewTokenLimit(engine, [.. examples.Select(e => e.Input)], examples.Max(e => e.Target.Length));
        var undecided = new List<int>();
        for (int i = 0; i < n; i++)
        {
            var target = examples[i].Target;
            bool decodesToItself = stopToken is int stop && target.Length <= limit && target.AsSpan().IndexOf(stop) == target.Length - 1;
            for (int k = 0; k < prompts; k++)
            {
                int row = i * prompts + k;
                if (decodesToItself && goldMatches[row] == target.Length) answers[row] = target;
                else undecided.Add(row);
            }
        }
        var decoded = undecided.Count == 0 ? [] : GreedyDecoder.Generate(engine, [.. undecided.Select(r => examples[r / prompts].Input)], [.. undecided.Select(r => r % prompts)],
            limit, stopToken, Math.Max(prompts, batchSize / prompts * prompts), useCache: true, processes: processes);
        for (int j = 0; j < undecided.Count; j++) answers[undecided[j]] = decoded[j];

        // Candidates: each example's distinct answers. Where all prompts agree there is nothing to weigh, so those rows are not scored.
        var candidates = new List<int[]>[n];
        var votes = new int[n * prompts];
        var candidateRows = new List<ScoreRow>();
        var firstRow = new int[n];
        for (int i = 0; i < n; i++)
        {
            var distinct = candidates[i] = [];
            for (int k = 0; k < prompts; k++)
            {
                var answer = answers[i * prompts + k];
                int index = distinct.FindIndex(a => a.AsSpan().SequenceEqual(answer));
                if (index < 0) { index = distinct.Count; distinct.Add(answer); }
                votes[i * prompts + k] = index;
            }
            firstRow[i] = candidateRows.Count;
            if (distinct.Count > 1)
                for (int k = 0; k < prompts; k++)
                    foreach (var answer in distinct) candidateRows.Add(new ScoreRow(examples[i].Input, answer, k));
        }
        var candidateScores = new float[candidateRows.Count];
        RowScorer.Score(engine, candidateRows, candidateScores, default, batchSize, processes: processes);

        var correct = new int[prompts];
        var goldLogLikelihood = new double[prompts];
        long goldTokens = 0;
        int majorityCorrect = 0, meanCorrect = 0;
        var majority = new int[n];
        var mean = new int[n];
        for (int i = 0; i < n; i++)
        {
            var target = examples[i].Target;
            goldTokens += target.Length;
            for (int k = 0; k < prompts; k++)
            {
                if (RowScorer.Matches(answers[i * prompts + k], target)) correct[k]++;
                goldLogLikelihood[k] += goldScores[i * prompts + k];
            }
            int count = candidates[i].Count;
            if (count > 1)
            {
                var meanProbability = new double[count];
                (majority[i], mean[i]) = EnsembleVote.Decide(votes.AsSpan(i * prompts, prompts), candidateScores.AsSpan(firstRow[i], prompts * count), count, meanProbability);
            }
            if (RowScorer.Matches(candidates[i][majority[i]], target)) majorityCorrect++;
            if (RowScorer.Matches(candidates[i][mean[i]], target)) meanCorrect++;
        }
        var single = new EnsembleScore[prompts];
        for (int k = 0; k < prompts; k++) single[k] = new EnsembleScore((double)correct[k] / n, double.NaN, -goldLogLikelihood[k] / goldTokens);
        return new EnsembleEvaluation(false, single, new EnsembleScore((double)majorityCorrect / n, double.NaN, double.NaN),
            new EnsembleScore((double)meanCorrect / n, double.NaN, double.NaN), majority, mean, candidates);
    }

    /// <summary>The token every target ends with, when no target holds it anywhere else (an EOS the data spells out); otherwise null.</summary>
    public static int? InferStopToken(IReadOnlyList<TokenizedExample> examples)
    {
        if (examples.Count == 0 || examples[0].Target.Length == 0) return null;
        int last = examples[0].Target[^1];
        foreach (var example in examples)
        {
            var target = example.Target;
            if (target.Length == 0 || target[^1] != last || target.AsSpan(0, target.Length - 1).Contains(last)) return null;
        }
        return last;
    }

    private static void Check(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (engine.PromptCount == 0) throw new InvalidOperationException("Load the ensemble's prompts into the engine first.");
        if (examples.Count == 0) throw new ArgumentException("No examples to evaluate.");
    }
}

using SoftPrompt.Distributed;
using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>A task served by one of the engine's prompts; with <see cref="LabelTokens"/> its rows are rank-classified, otherwise generated.</summary>
public sealed record ServedTask(string Name, int PromptIndex, IReadOnlyList<int[]>? LabelTokens = null)
{
    public bool IsClassification => LabelTokens is not null;
}

/// <summary>One input to answer with task <see cref="Task"/> (an index into the served tasks).</summary>
public readonly record struct ServedRow(int Task, int[] Input);

/// <summary>
/// One row's answer. <see cref="Label"/>: the chosen label's index (classification; −1 for generation).
/// <see cref="Tokens"/>: the label's target ids or the generated ids (with the stop token when decoding reached it).
/// <see cref="Score"/>: the summed log-likelihood of <see cref="Tokens"/> after the input under the task's prompt.
/// <see cref="Probability"/>: the label's softmax probability over the task's labels (NaN for generation).
/// </summary>
public sealed record Prediction(int Label, int[] Tokens, float Score, double Probability);

/// <summary>
/// Answers rows of several tasks with one frozen model: every row runs with its task's prompt, and rows of different
/// tasks share batches (each row's promptIndex is its task's prompt), so the model serves all tasks in the same forward
/// passes. Classification rows are rank-classified over their task's labels (ties: the label listed first);
/// generation rows are greedy-decoded (or sampled), then scored. With a process group of N &gt; 1 each rank scores and
/// decodes a contiguous share of those rows and every rank receives all the predictions, in row order.
/// </summary>
public static class MixedPredictor
{
    public static Prediction[] Predict(IPromptEngine engine, IReadOnlyList<ServedTask> tasks, IReadOnlyList<ServedRow> rows, int maxNewTokens, int? stopToken, int batchSize = 32,
        Sampling? sampling = null, StopStrings? stopStrings = null, IProcessGroup? processes = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        foreach (var task in tasks)
        {
            if ((uint)task.PromptIndex >= (uint)engine.PromptCount)
                throw new ArgumentException($"Task \"{task.Name}\" uses prompt {task.PromptIndex}, the engine holds {engine.PromptCount}.");
            if (task.LabelTokens is { Count: 0 }) throw new ArgumentException($"Task \"{task.Name}\" has an empty label list.");
        }
        foreach (var row in rows)
            if ((uint)row.Task >= (uint)tasks.Count) throw new ArgumentException($"A row names task {row.Task}, only {tasks.Count} are served.");

        // One scoring pass over every (classification row, label) pair, whatever its task.
        var labelRows = new List<ScoreRow>();
        var firstLabelRow = new int[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            var task = tasks[rows[i].Task];
            firstLabelRow[i] = labelRows.Count;
            if (task.LabelTokens is { } labels)
                foreach (var label in labels) labelRows.Add(new ScoreRow(rows[i].Input, label, task.PromptIndex));
        }
        var labelScores = new float[labelRows.Count];
        RowScorer.Score(engine, labelRows, labelScores, default, batchSize, processes: processes);

        // One decoding over every generation row, each with its task's prompt, then one pass to score the answers.
        var generated = Enumerable.Range(0, rows.Count).Where(i => !tasks[rows[i].Task].IsClassification).ToArray();
        var answers = generated.Length == 0 ? [] : GreedyDecoder.Generate(engine, [.. generated.Select(i => rows[i].Input)],
            [.. generated.Select(i => tasks[rows[i].Task].PromptIndex)], maxNewTokens, stopToken, batchSize, useCache: true, sampling, stopStrings, processes);
        var answerRows = generated.Select((i, j) => new ScoreRow(rows[i].Input, answers[j], tasks[rows[i].Task].PromptIndex)).ToArray();
        var answerScores = new float[answerRows.Length];
        RowScorer.Score(engine, answerRows, answerScores, default, batchSize, processes: processes);

        var predictions = new Prediction[rows.Count];
        for (int j = 0; j < generated.Length; j++) predictions[generated[j]] = new Prediction(-1, answers[j], answerScores[j], double.NaN);
        for (int i = 0; i < rows.Count; i++)
        {
            if (tasks[rows[i].Task].LabelTokens is not { } labels) continue;
            var scores = labelScores.AsSpan(firstLabelRow[i], labels.Count);
            int best = EnsembleVote.ArgMax(scores);
            var probability = new double[labels.Count];
            EnsembleVote.AddSoftmax(scores, probability);
            predictions[i] = new Prediction(best, labels[best], scores[best], probability[best]);
        }
        return predictions;
    }
}

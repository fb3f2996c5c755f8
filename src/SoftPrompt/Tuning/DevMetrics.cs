using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// One evaluation's numbers by name ("accuracy", "macro_f1", "exact_match", "token_accuracy", "loss") and which of
/// them selects the best prompt. Higher <see cref="Primary"/> is better; on a tie the lower loss wins, so a dev set
/// that is already solved still keeps the more confident prompt.
/// </summary>
public sealed record DevMetrics(string Primary, IReadOnlyDictionary<string, double> Values)
{
    public const string Loss = "loss";

    public double Score => Values[Primary];
    public double MeanLoss => Values[Loss];

    public bool IsBetterThan(DevMetrics other) => Score > other.Score || (Score == other.Score && MeanLoss < other.MeanLoss);

    public override string ToString() =>
        string.Join("  ", Values.Select(p => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{p.Key} {p.Value:0.####}")));
}

/// <summary>
/// Scores a prompt on a dev set: rank classification (accuracy selects, with macro-F1, exact match, token accuracy
/// and loss of the gold labels) when the data has a verbalizer, otherwise exact match of greedy decoding (selects)
/// with teacher-forced token accuracy and loss.
/// <para>
/// An engine holding K &gt; 1 prompts (an ensemble run) is scored as an ensemble (<see cref="EnsembleEvaluator"/>): the
/// primary metric (accuracy or exact_match) is then the majority vote's, beside mean_probability_*, best_prompt_*,
/// mean_prompt_* and prompt{k}_* of each prompt alone; loss is the prompts' mean gold loss. Generation is then
/// scored by decoding (a vote needs the answers), which gives the same per-prompt exact match as teacher forcing.
/// </para>
/// </summary>
public sealed class DevEvaluator(IReadOnlyList<TokenizedExample> examples, ClassificationTask? task, int batchSize = 32)
{
    public int Rows => examples.Count;
    public bool IsClassification => task is not null;
    public string Primary => task is null ? "exact_match" : "accuracy";
    /// <summary>Where an ensemble's decoding stops (the tokenizer's EOS); null infers it from the targets.</summary>
    public int? StopToken { get; init; }
    /// <summary>
    /// The processes that evaluate together: each scores a contiguous share of the rows and every one computes the same
    /// metrics from all of them (<see cref="RowShares"/>). Every rank of the group must evaluate, with the same rows.
    /// </summary>
    public IProcessGroup Processes { get; init; } = SingleProcess.Instance;

    public DevMetrics Evaluate(IPromptEngine engine)
    {
        if (engine.PromptCount > 1) return EnsembleMetrics(engine);
        if (task is not null)
        {
            var result = RankClassifier.Evaluate(engine, examples, task, batchSize, processes: Processes);
            return new DevMetrics(Primary, new Dictionary<string, double>
            {
                ["accuracy"] = result.Metrics.Accuracy,
                ["macro_f1"] = result.Metrics.MacroF1,
                ["exact_match"] = result.ExactMatch,
                ["token_accuracy"] = result.TokenAccuracy,
                [DevMetrics.Loss] = result.MeanLoss,
            });
        }
        var scores = Evaluator.ExactMatch(engine, examples, batchSize, processes: Processes);
        return new DevMetrics(Primary, new Dictionary<string, double>
        {
            ["exact_match"] = scores.Accuracy,
            ["token_accuracy"] = scores.TokenAccuracy,
            [DevMetrics.Loss] = scores.MeanLoss,
        });
    }

    /// <summary>The metrics of an ensemble: see the class remarks.</summary>
    public DevMetrics EnsembleMetrics(IPromptEngine engine) => Metrics(Primary, task is null
        ? EnsembleEvaluator.Generate(engine, examples, StopToken, batchSize, Processes)
        : EnsembleEvaluator.Classify(engine, examples, task, batchSize, Processes));

    public static DevMetrics Metrics(string primary, EnsembleEvaluation result)
    {
        var values = new Dictionary<string, double> { [primary] = result.Majority.Accuracy };
        if (result.IsClassification) values["macro_f1"] = result.Majority.MacroF1;
        values["mean_probability_" + primary] = result.MeanProbability.Accuracy;
        values["best_prompt_" + primary] = result.Prompts[result.BestPrompt].Accuracy;
        values["mean_prompt_" + primary] = result.Prompts.Average(p => p.Accuracy);
        values[DevMetrics.Loss] = result.Prompts.Average(p => p.Loss);
        for (int k = 0; k < result.Prompts.Count; k++) values[$"prompt{k}_{primary}"] = result.Prompts[k].Accuracy;
        return new DevMetrics(primary, values);
    }
}

using System.Globalization;
using System.Text.Json.Nodes;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Output;

/// <summary>An ensemble's scores as a plain-text table and as JSON: each prompt alone, the best of them, the majority vote and the mean probability.</summary>
internal static class EnsembleReport
{
    public const string TieRule =
        "majority vote: each prompt votes for its answer; a tie goes to the tied answer with the highest probability summed over the prompts " +
        "(each prompt's softmax over the candidates), then to the one listed first";

    public static string Metric(EnsembleEvaluation result) => result.IsClassification ? "accuracy" : "exact_match";

    public static void WriteTable(TextWriter writer, EnsembleEvaluation result, IReadOnlyList<string> names)
    {
        var inv = CultureInfo.InvariantCulture;
        bool f1 = result.IsClassification;
        var labels = names.Select((n, k) => $"{k}  {n}").ToList();
        int best = result.BestPrompt;
        string bestLabel = $"best single prompt ({best})";
        int width = Math.Max(24, labels.Append(bestLabel).Max(l => l.Length));
        string metric = result.IsClassification ? "accuracy" : "exact match";
        writer.WriteLine($"{"prompt".PadRight(width)}  {metric,11}{(f1 ? "  macro-F1" : "")}    loss");
        string Row(string label, EnsembleScore s) =>
            string.Create(inv, $"{label.PadRight(width)}  {s.Accuracy,11:F4}{(f1 ? $"  {s.MacroF1,8:F4}" : "")}  {(double.IsNaN(s.Loss) ? "" : s.Loss.ToString("F4", inv)),6}").TrimEnd();
        for (int k = 0; k < labels.Count; k++) writer.WriteLine(Row(labels[k], result.Prompts[k]));
        writer.WriteLine(new string('-', width + 2 + 11 + (f1 ? 10 : 0) + 8));
        writer.WriteLine(Row(bestLabel, result.Prompts[best]));
        writer.WriteLine(Row("majority vote", result.Majority));
        writer.WriteLine(Row("mean probability", result.MeanProbability));
        writer.WriteLine($"({TieRule}; mean probability: the answer with the highest probability averaged over the prompts)");
    }

    public static JsonObject Json(EnsembleEvaluation result, IReadOnlyList<string> paths)
    {
        JsonObject Score(EnsembleScore s)
        {
            var node = new JsonObject { [Metric(result)] = JsonOutput.Number(s.Accuracy) };
            if (result.IsClassification) node["macro_f1"] = JsonOutput.Number(s.MacroF1);
            if (!double.IsNaN(s.Loss)) node["loss"] = JsonOutput.Number(s.Loss);
            return node;
        }
        var prompts = new JsonArray();
        for (int k = 0; k < paths.Count; k++)
        {
            var node = Score(result.Prompts[k]);
            node["index"] = k;
            node["path"] = paths[k];
            prompts.Add(node);
        }
        var best = Score(result.Prompts[result.BestPrompt]);
        best["index"] = result.BestPrompt;
        best["path"] = paths[result.BestPrompt];
        return new JsonObject
        {
            ["task"] = result.IsClassification ? "classification" : "generation",
            ["metric"] = Metric(result),
            ["rows"] = result.Examples,
            ["prompts"] = prompts,
            ["best_prompt"] = best,
            ["majority_vote"] = Score(result.Majority),
            ["mean_probability"] = Score(result.MeanProbability),
            ["tie_rule"] = TieRule,
        };
    }
}

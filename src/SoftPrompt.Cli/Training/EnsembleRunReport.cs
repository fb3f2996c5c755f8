using System.Text.Json.Nodes;
using SoftPrompt.Cli.Output;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Training;

/// <summary>What `train --ensemble K` adds to the run's output: its K files, and the ensemble's dev table and JSON.</summary>
internal static class EnsembleRunReport
{
    /// <summary>The run's prompt files for people: OUT, or OUT.k{0..K-1}.safetensors (the .last ones with <paramref name="last"/> and --dev).</summary>
    public static string Outputs(TrainPlan plan, bool last)
    {
        if (plan.Ensemble == 1) return last ? plan.LastOutput ?? plan.Output : plan.Output;
        return $"{TrainPlan.Stem(plan.Output)}.k{{0..{plan.Ensemble - 1}}}{(last && plan.LastOutput is not null ? ".last" : "")}.safetensors";
    }

    public static void WriteTable(TextWriter human, TrainPlan plan, EnsembleEvaluation dev)
    {
        human.WriteLine($"ensemble of {plan.Ensemble} on {plan.Dev} ({Outputs(plan, last: false)}):");
        EnsembleReport.WriteTable(human, dev, [.. Enumerable.Range(0, plan.Ensemble).Select(k => Path.GetFileName(plan.PromptPath(k)))]);
    }

    /// <summary>An ensemble has K outputs: "out" and "last" become lists (prompt k at index k), and "ensemble" holds the seeds and the dev scores.</summary>
    public static void AddTo(JsonObject document, TrainPlan plan, Func<int, string> lastPath, bool hasBest, EnsembleEvaluation? dev)
    {
        var members = Enumerable.Range(0, plan.Ensemble).ToList();
        document["out"] = plan.Dev is null || hasBest ? new JsonArray([.. members.Select(k => JsonValue.Create(plan.PromptPath(k)))]) : null;
        document["last"] = new JsonArray([.. members.Select(k => JsonValue.Create(lastPath(k)))]);
        document["ensemble"] = new JsonObject
        {
            ["size"] = plan.Ensemble,
            ["seeds"] = new JsonArray([.. members.Select(k => JsonValue.Create(plan.Options.Seed + k))]),
            ["dev"] = dev is null ? null : EnsembleReport.Json(dev, [.. members.Select(plan.PromptPath)]),
        };
    }
}

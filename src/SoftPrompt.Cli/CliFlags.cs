using System.Text.RegularExpressions;

namespace SoftPrompt.Cli;

/// <summary>
/// The library names a setting in its messages the way a library user sets it, in backticks (`TrainOptions.LearningRate`,
/// `promptLength`, `device` cuda); a command-line user set it with a flag. This table says which, and
/// <see cref="Translate"/> rewrites a library message for the command line. A name missing here stays as the library wrote it.
/// </summary>
internal static partial class CliFlags
{
    private static readonly Dictionary<string, string> Flags = new()
    {
        ["TrainOptions.Steps"] = "--steps",
        ["TrainOptions.BatchSize"] = "--batch-size",
        ["TrainOptions.GradientAccumulation"] = "--grad-accum",
        ["TrainOptions.LearningRate"] = "--lr",
        ["Sampling.Temperature"] = "--temperature",
        ["Sampling.TopK"] = "--top-k",
        ["Sampling.TopP"] = "--top-p",
        ["StopStrings.Values"] = "--stop",
        ["TrainOptions.EvalEvery"] = "--eval-every",
        ["TrainOptions.EarlyStoppingPatience"] = "--early-stopping-patience",
        ["TrainOptions.CheckpointEvery"] = "--checkpoint-every",
        ["TrainOptions.Ensemble"] = "--ensemble",
        ["TrainOptions.Seed"] = "--seed",
        ["TrainOptions.Shuffle"] = "--no-shuffle",
        ["TrainOptions.LengthBuckets"] = "--length-buckets",
        ["TrainOptions.Optimizer"] = "--optimizer/--weight-decay/--clip-norm",
        ["TrainOptions.Schedule"] = "--schedule/--warmup-steps",
        ["OptimizerSettings.ClipNorm"] = "--clip-norm",
        ["OptimizerSettings.WeightDecay"] = "--weight-decay",
        ["OptimizerSettings.DecayRate"] = "--decay-rate",
        ["OptimizerSettings.ClipThreshold"] = "--update-clip",
        ["LearningRateSchedule.WarmupSteps"] = "--warmup-steps",
        ["LearningRateSchedule.Kind"] = "--schedule",
        ["TrainRecipe"] = "--recipe",
        ["InitSpec"] = "--init",
        ["InitSources.VocabIsFrequencyOrdered"] = "--vocab-is-frequency-ordered",
        ["promptLength"] = "--prompt-length",
        ["labels"] = "--labels",
        ["InitSources.LabelTokens"] = "--labels",
        ["prompts"] = "--prompt",
        ["taskColumn"] = "--task-column",
        ["ColumnMapping.InputColumn"] = "--input-column",
        ["ColumnMapping.Template"] = "--template",
        ["ColumnMapping.TargetColumn"] = "--target-column",
        ["CheckpointStore"] = "--checkpoint-dir",
        ["MetricsLog"] = "--metrics",
        ["PeftAdapter"] = "--peft",
        ["model"] = "--model",
        ["device"] = "--device",
        ["precision"] = "--precision",
        ["recomputation"] = "--recompute",
        ["outputDirectory"] = "--out",
        // Names of library guard clauses (ArgumentOutOfRangeException.ThrowIf…) a flag can reach.
        ["keepLast"] = "--keep-last",
        ["longestPrompt"] = "--prompt-length",
        ["shape"] = "--shape",
        ["gpu"] = "--gpu",
    };

    [GeneratedRegex("`([A-Za-z][A-Za-z0-9.]*)`", RegexOptions.CultureInvariant)]
    private static partial Regex SettingName();

    /// <summary>A library message with every setting it names replaced by the flag that sets it.</summary>
    public static string Translate(string message) =>
        SettingName().Replace(message, m => Flags.TryGetValue(m.Groups[1].Value, out var flag) ? flag : m.Value);

    /// <summary>Every library setting name the table translates (for tests).</summary>
    public static IReadOnlyCollection<string> Names => Flags.Keys;
}

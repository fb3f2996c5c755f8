using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SoftPrompt.Checkpoints;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// The settings a checkpoint's continuation depends on. A resumed run must have the same ones, or it would not
/// continue the same run: the batches, the updates or the schedule would differ from the uninterrupted run's.
/// Settings that do not change the trajectory (evaluation, checkpointing, logging) are free to change.
/// </summary>
public static class RunSignature
{
    // key → the setting that decides it, for the mismatch message (the CLI names its flags instead).
    private static readonly Dictionary<string, string> Settings = new()
    {
        ["batch_size"] = "`TrainOptions.BatchSize`", ["grad_accum"] = "`TrainOptions.GradientAccumulation`", ["seed"] = "`TrainOptions.Seed`",
        ["shuffle"] = "`TrainOptions.Shuffle`", ["length_buckets"] = "`TrainOptions.LengthBuckets`", ["lr"] = "`TrainOptions.LearningRate`",
        ["optimizer"] = "`TrainOptions.Optimizer`", ["schedule"] = "`TrainOptions.Schedule`", ["steps"] = "`TrainOptions.Steps` (the linear schedule depends on it)",
        ["prompt_length"] = "`promptLength`", ["train_rows"] = "the training data", ["train_hash"] = "the training data", ["ensemble"] = "`TrainOptions.Ensemble`",
    };

    public static SortedDictionary<string, string> Of(TrainOptions options, int promptLength, IReadOnlyList<TokenizedExample> examples)
    {
        var inv = CultureInfo.InvariantCulture;
        var o = options.Optimizer;
        var signature = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["batch_size"] = options.BatchSize.ToString(inv),
            ["grad_accum"] = options.GradientAccumulation.ToString(inv),
            ["seed"] = options.Seed.ToString(inv),
            ["shuffle"] = options.Shuffle ? "true" : "false",
            ["length_buckets"] = options.LengthBuckets ? "true" : "false",
            ["lr"] = options.LearningRate.ToString("R", inv),
            ["optimizer"] = string.Create(inv,
                $"{o.Kind} beta1={o.Beta1:R} beta2={o.Beta2:R} eps={o.Epsilon:R} wd={o.WeightDecay:R} clip_norm={o.ClipNorm:R} decay_rate={o.DecayRate:R} clip_threshold={o.ClipThreshold:R} eps2={o.AdafactorEpsilon:R}"),
            ["schedule"] = options.Schedule.ToString(),
            ["prompt_length"] = promptLength.ToString(inv),
            ["train_rows"] = examples.Count.ToString(inv),
            ["train_hash"] = DataHash(examples),
        };
        // A constant schedule does not look at the total, so a finished run can be resumed with more --steps.
        if (options.Schedule.Kind != ScheduleKind.Constant) signature["steps"] = options.Steps.ToString(inv);
        // Only ensembles carry the key, so single-prompt checkpoints made before ensembles existed keep their signature.
        if (options.Ensemble > 1) signature["ensemble"] = options.Ensemble.ToString(inv);
        return signature;
    }

    /// <summary>Throws naming the first setting that differs between the checkpoint and this run.</summary>
    public static void Check(IReadOnlyDictionary<string, string> saved, IReadOnlyDictionary<string, string> current, string path)
    {
        foreach (var (key, value) in current)
        {
            if (!saved.TryGetValue(key, out var old) || old == value) continue;
            string what = key is "train_rows" or "train_hash"
                ? $"the training data differs ({key} {old} then, {value} now)"
                : $"{key} was {old}, this run has {value}";
            throw new CheckpointException($"{path}: cannot resume: {what}. Resume with the run's original settings ({Settings.GetValueOrDefault(key, key)}), or start afresh in another `CheckpointStore` directory.");
        }
    }

    /// <summary>SHA-256 over every example's input and target ids (with their lengths), first 16 hex digits.</summary>
    public static string DataHash(IReadOnlyList<TokenizedExample> examples)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<int> lengths = stackalloc int[2];
        foreach (var example in examples)
        {
            lengths[0] = example.Input.Length;
            lengths[1] = example.Target.Length;
            hash.AppendData(MemoryMarshal.AsBytes(lengths));
            hash.AppendData(MemoryMarshal.AsBytes(example.Input.AsSpan()));
            hash.AppendData(MemoryMarshal.AsBytes(example.Target.AsSpan()));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}

using System.Globalization;
using SoftPrompt.Engines;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Training;

/// <summary>The metadata a trained prompt file carries: the model it belongs to, how it was made, and where it was taken.</summary>
internal static class PromptMetadata
{
    public static Dictionary<string, string> ForRun(LoadedModel model, TrainPlan plan, InitSpec init, int promptLength)
    {
        var inv = CultureInfo.InvariantCulture;
        var o = plan.Options;
        return new Dictionary<string, string>
        {
            [PromptFile.FamilyKey] = model.Family.Name,
            [PromptFile.FingerprintKey] = model.Fingerprint,
            ["model_path"] = model.Directory,
            ["model_layers"] = model.Config.Layers.ToString(inv),
            ["model_heads"] = model.Config.Heads.ToString(inv),
            ["init"] = init.ToString(),
            ["optimizer"] = plan.OptimizerName,
            ["learning_rate"] = o.LearningRate.ToString("R", inv),
            ["schedule"] = o.Schedule.ToString(),
            ["batch_size"] = o.BatchSize.ToString(inv),
            ["grad_accum"] = o.GradientAccumulation.ToString(inv),
            ["seed"] = o.Seed.ToString(inv),
            ["data"] = Path.GetFullPath(plan.Data),
            ["recipe"] = plan.Recipe?.Name ?? "",
            ["device"] = EngineFlags.Describe(plan.Device, plan.Precision),
        };
    }

    /// <param name="selected">"best-dev" or "last": which prompt of the run this is.</param>
    public static void Save(string path, float[] values, int length, int width, IReadOnlyDictionary<string, string> run, int step, string selected,
        DevMetrics? dev, float trainLoss)
    {
        var inv = CultureInfo.InvariantCulture;
        var metadata = new Dictionary<string, string>(run)
        {
            ["step"] = step.ToString(inv),
            ["selected"] = selected,
        };
        if (float.IsFinite(trainLoss)) metadata["train_loss"] = trainLoss.ToString("R", inv);
        if (dev is not null)
        {
            metadata["dev_primary"] = dev.Primary;
            foreach (var (name, value) in dev.Values) metadata["dev_" + name] = value.ToString("R", inv);
        }
        new PromptFile(values, length, width, metadata).Save(path);
    }

    /// <summary>
    /// Saves a run's prompts [K, P, d]: prompt k to <paramref name="path"/>(k), its metadata naming its place in the
    /// ensemble and the seed it was initialised with (K = 1: just the one prompt, as <see cref="Save"/>).
    /// </summary>
    public static void SaveAll(Func<int, string> path, float[] values, int count, int length, int width, IReadOnlyDictionary<string, string> run,
        int seed, int step, string selected, DevMetrics? dev, float trainLoss)
    {
        var inv = CultureInfo.InvariantCulture;
        int size = length * width;
        if (values.Length != count * size) throw new ArgumentException($"{values.Length} prompt values for {count} prompts of [{length}, {width}].");
        for (int k = 0; k < count; k++)
        {
            var metadata = run;
            if (count > 1)
                metadata = new Dictionary<string, string>(run)
                {
                    ["ensemble_size"] = count.ToString(inv),
                    ["ensemble_index"] = k.ToString(inv),
                    ["init_seed"] = (seed + k).ToString(inv),
                };
            Save(path(k), values[(k * size)..((k + 1) * size)], length, width, metadata, step, selected, dev, trainLoss);
        }
    }
}

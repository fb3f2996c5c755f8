using System.Globalization;
using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>
/// Everything a run needs to continue exactly where it was: the prompt, the optimizer state, the step, the sampler's
/// place in the data, the best dev prompt so far and the run's signature. One safetensors file (atomically written)
/// with tensors prompt_embeddings [P, d], optimizer_state [N] and best_prompt_embeddings [P, d] (when there is a best);
/// the rest is metadata. It also reads as a prompt file (same tensor name and model keys), so a checkpoint can serve
/// as --init or be evaluated directly. An ensemble run's checkpoint holds its K prompts as [K, P, d] (metadata
/// prompt_count = K); it resumes the ensemble but is no prompt file.
/// </summary>
public sealed record TrainingCheckpoint(
    int Step,
    int PromptLength,
    int Width,
    float[] Prompt,
    float[] OptimizerState,
    SamplerPosition Sampler,
    BestPrompt? Best,
    int EvaluationsSinceBest,
    IReadOnlyDictionary<string, string> Signature,
    IReadOnlyDictionary<string, string> PromptMetadata)
{
    public const string Format = "softprompt-checkpoint/1";
    public const string OptimizerTensor = "optimizer_state";
    public const string BestTensor = "best_prompt_embeddings";

    /// <summary>Prompts in <see cref="Prompt"/> and the best prompt: K of an ensemble run, else 1.</summary>
    public int PromptCount { get; init; } = 1;

    private long[] PromptShape => PromptCount == 1 ? [PromptLength, Width] : [PromptCount, PromptLength, Width];

    public void Save(string path)
    {
        var inv = CultureInfo.InvariantCulture;
        var writer = new SafeTensorWriter();
        foreach (var (key, value) in PromptMetadata) writer.Metadata[key] = value;
        writer.Metadata["format"] = Format;
        writer.Metadata["prompt_length"] = PromptLength.ToString(inv);
        writer.Metadata["d_model"] = Width.ToString(inv);
        if (PromptCount != 1) writer.Metadata["prompt_count"] = PromptCount.ToString(inv);
        writer.Metadata["step"] = Step.ToString(inv);
        writer.Metadata["sampler_epoch"] = Sampler.Epoch.ToString(inv);
        writer.Metadata["sampler_cursor"] = Sampler.Cursor.ToString(inv);
        writer.Metadata["evals_since_best"] = EvaluationsSinceBest.ToString(inv);
        writer.Metadata["signature"] = JsonSerializer.Serialize(Signature);
        FinitePrompt.Require(Prompt, Width, path, PromptFile.TensorName, writing: true);
        FinitePrompt.Require(OptimizerState, OptimizerState.Length, path, OptimizerTensor, writing: true);
        writer.Add(PromptFile.TensorName, Prompt, PromptShape);
        writer.Add(OptimizerTensor, OptimizerState, [OptimizerState.Length]);
        if (Best is not null)
        {
            writer.Metadata["best_step"] = Best.Step.ToString(inv);
            writer.Metadata["best_metrics"] = MetricsJson(Best.Metrics);
            writer.Add(BestTensor, Best.Values, PromptShape);
        }
        writer.Save(path);
    }

    public static TrainingCheckpoint Load(string path)
    {
        using var file = SafeTensorFile.Open(path);
        var meta = file.Metadata;
        if (meta.GetValueOrDefault("format") != Format)
            throw new CheckpointException($"{path}: not a SoftPrompt training checkpoint (format \"{meta.GetValueOrDefault("format")}\", expected {Format}).");
        int Int(string key) => meta.TryGetValue(key, out var text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value : throw new CheckpointException($"{path}: metadata \"{key}\" is missing or not an integer; the checkpoint is damaged, resume from an earlier one.");
        int length = Int("prompt_length"), width = Int("d_model");
        int count = meta.ContainsKey("prompt_count") ? Int("prompt_count") : 1;
        long elements = (long)count * length * width;
        var prompt = Tensor(file, PromptFile.TensorName, elements, path);
        var state = file.Read<float>(file.Contains(OptimizerTensor) ? OptimizerTensor : throw new CheckpointException($"{path}: no tensor \"{OptimizerTensor}\"; the checkpoint is damaged."));
        BestPrompt? best = null;
        if (meta.TryGetValue("best_metrics", out var metricsJson))
            best = new BestPrompt(Int("best_step"), ParseMetrics(metricsJson, path), Tensor(file, BestTensor, elements, path));
        Dictionary<string, string> signature;
        try { signature = JsonSerializer.Deserialize<Dictionary<string, string>>(meta.GetValueOrDefault("signature") ?? "") ?? []; }
        catch (JsonException e) { throw new CheckpointException($"{path}: metadata \"signature\" is not valid JSON ({e.Message}); the checkpoint is damaged.", e); }
        string[] own = ["format", "prompt_length", "d_model", "prompt_count", "step", "sampler_epoch", "sampler_cursor", "evals_since_best", "signature", "best_step", "best_metrics"];
        var promptMetadata = meta.Where(p => !own.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value);
        return new TrainingCheckpoint(Int("step"), length, width, prompt, state, new SamplerPosition(Int("sampler_epoch"), Int("sampler_cursor")),
            best, Int("evals_since_best"), signature, promptMetadata) { PromptCount = count };
    }

    private static float[] Tensor(SafeTensorFile file, string name, long elements, string path)
    {
        if (!file.TryGetInfo(name, out var info)) throw new CheckpointException($"{path}: no tensor \"{name}\"; the checkpoint is damaged, resume from an earlier one.");
        if (info.ElementCount != elements) throw new CheckpointException($"{path}: tensor \"{name}\" has shape {info.ShapeText}, its metadata says {elements} values.");
        var values = file.Read<float>(name);
        FinitePrompt.Require(values, info.Shape.Length > 0 ? (int)info.Shape[^1] : 1, path, name, writing: false);
        return values;
    }

    internal static string MetricsJson(DevMetrics metrics) =>
        JsonSerializer.Serialize(new Dictionary<string, object> { ["primary"] = metrics.Primary, ["values"] = metrics.Values });

    internal static DevMetrics ParseMetrics(string json, string path)
    {
        try
        {
            using var document = StrictJson.Parse(json);
            var root = document.RootElement;
            var values = new Dictionary<string, double>();
            foreach (var value in root.GetProperty("values").EnumerateObject()) values[value.Name] = value.Value.GetDouble();
            return new DevMetrics(root.GetProperty("primary").GetString()!, values);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new CheckpointException($"{path}: metadata \"best_metrics\" is not readable ({e.Message}); the checkpoint is damaged.", e);
        }
    }
}

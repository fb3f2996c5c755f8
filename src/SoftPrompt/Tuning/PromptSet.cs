using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>
/// Several prompt files loaded for one engine, in order: <see cref="Values"/> [K, P, d] is what
/// <c>IPromptEngine.LoadPrompts</c> takes, and prompt k serves the batch rows whose promptIndex is k.
/// </summary>
public sealed record PromptSet(IReadOnlyList<string> Paths, IReadOnlyList<PromptFile> Files, float[] Values, int Length, int Width)
{
    public int Count => Files.Count;

    /// <summary>
    /// Loads and checks the files: each must fit the model (<see cref="PromptFile.CheckBelongsTo"/>), and all must have
    /// the same length, because an engine holds prompts of one length (a batch's rows all start at the same position).
    /// </summary>
    public static PromptSet Load(IReadOnlyList<string> paths, int width, string? fingerprint)
    {
        if (paths.Count == 0) throw new ArgumentException("Give at least one prompt file.");
        var files = new PromptFile[paths.Count];
        for (int k = 0; k < paths.Count; k++)
        {
            files[k] = PromptFile.Load(paths[k]);
            files[k].CheckBelongsTo(paths[k], width, fingerprint);
        }
        if (files.Any(f => f.Length != files[0].Length))
            throw new CheckpointException("The prompts differ in length (" + string.Join(", ", paths.Select((p, k) => $"{p}: P={files[k].Length}")) +
                "); prompts served together must all have the same length, since the engines do not support per-row prompt lengths yet. " +
                "Serve prompts of different lengths in separate runs, or retrain them with one --prompt-length.");
        int length = files[0].Length, size = length * width;
        var values = new float[paths.Count * size];
        for (int k = 0; k < files.Length; k++) files[k].Values.CopyTo(values.AsSpan(k * size, size));
        return new PromptSet(paths, files, values, length, width);
    }
}

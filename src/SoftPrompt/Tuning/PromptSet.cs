using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>
/// Several prompt files loaded for one engine, in order: <see cref="Values"/> [ΣP_k, d] packed as <see cref="Layout"/>
/// says is what <c>IPromptEngine.LoadPrompts</c> takes, and prompt k serves the batch rows whose promptIndex is k.
/// The prompts may differ in length.
/// </summary>
public sealed record PromptSet(IReadOnlyList<string> Paths, IReadOnlyList<PromptFile> Files, float[] Values, PromptLayout Layout, int Width)
{
    public int Count => Files.Count;
    /// <summary>The longest prompt: the room the prompts take in front of every batch's tokens.</summary>
    public int LongestLength => Layout.MaxLength;
    /// <summary>"P=20" when all prompts have one length, else "P=20/50/100".</summary>
    public string LengthText => Layout.IsUniform ? $"P={Layout.MaxLength}" : Layout.ToString();

    /// <summary>Loads and checks the files: each must fit the model (<see cref="PromptFile.CheckBelongsTo"/>).</summary>
    public static PromptSet Load(IReadOnlyList<string> paths, int width, string? fingerprint)
    {
        if (paths.Count == 0) throw new ArgumentException("Give at least one prompt file.");
        var files = new PromptFile[paths.Count];
        var lengths = new int[paths.Count];
        for (int k = 0; k < paths.Count; k++)
        {
            files[k] = PromptFile.Load(paths[k]);
            files[k].CheckBelongsTo(paths[k], width, fingerprint);
            lengths[k] = files[k].Length;
        }
        var layout = new PromptLayout(lengths);
        var values = new float[layout.ValueCount(width)];
        for (int k = 0; k < files.Length; k++) files[k].Values.CopyTo(values.AsSpan(layout.Offset(k) * width, layout.Length(k) * width));
        return new PromptSet(paths, files, values, layout, width);
    }
}

using System.Globalization;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>
/// Prompt values must be finite wherever they are written or read: a NaN or infinity makes every later loss NaN, and
/// a file that holds one would break every run that loads or resumes from it.
/// </summary>
public static class FinitePrompt
{
    /// <summary>Throws, naming <paramref name="where"/>, the tensor and the first bad value's prompt vector and channel.</summary>
    public static void Require(ReadOnlySpan<float> values, int width, string where, string tensor, bool writing)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsFinite(values[i])) continue;
            string at = string.Create(CultureInfo.InvariantCulture, $"{values[i]} at index {i} (vector {i / Math.Max(1, width)}, channel {i % Math.Max(1, width)})");
            throw new CheckpointException(writing
                ? $"{where}: refusing to write tensor '{tensor}' holding {at}: the prompt diverged; lower `TrainOptions.LearningRate` or resume from an earlier checkpoint."
                : $"{where}: tensor '{tensor}' holds {at}; the file is damaged or was saved from a diverged run, so it cannot be used.");
        }
    }
}

using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// The weight draws of tools/reference/bf16_reference.py, bit for bit (the bf16 bar is on medians over draws, since one
/// draw of these ill-conditioned cases is no bar). Draw 0 is the model file as committed; draw d &gt; 0 multiplies every
/// float32 element by 1 + perturbation·(2u − 1), u = (splitmix64(splitmix64(fnv1a64(name) ^ d) + index) &gt;&gt; 11)·2⁻⁵³,
/// in float64, rounded once to float32. The script records a SHA-256 of each draw's tensors that the test checks.
/// </summary>
internal static class WeightDraws
{
    /// <summary>Writes draw <paramref name="draw"/> of <paramref name="modelDirectory"/> (config.json and model.safetensors)
    /// to <paramref name="destination"/>; returns the SHA-256 (lowercase hex) of the drawn tensors, as the script computes it:
    /// over the tensors in ordinal name order, each its UTF-8 name then its little-endian bytes.</summary>
    public static string Write(string modelDirectory, int draw, double perturbation, string destination)
    {
        Directory.CreateDirectory(destination);
        File.Copy(Path.Combine(modelDirectory, "config.json"), Path.Combine(destination, "config.json"), overwrite: true);
        var writer = new SafeTensorWriter();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var file = SafeTensorFile.Open(Path.Combine(modelDirectory, "model.safetensors")))
        {
            foreach (var info in file.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                byte[] bytes = file.GetBytes(info.Name).ToArray();
                if (info.DType == SafeTensorDType.F32) Perturb(info.Name, MemoryMarshal.Cast<byte, float>(bytes.AsSpan()), draw, perturbation);
                writer.AddRaw(info.Name, info.DType, info.Shape.AsSpan(), bytes);
                sha.AppendData(Encoding.UTF8.GetBytes(info.Name));
                sha.AppendData(bytes);
            }
        }
        writer.Save(Path.Combine(destination, "model.safetensors"));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static void Perturb(string name, Span<float> values, int draw, double perturbation)
    {
        if (draw == 0) return;
        ulong key = SplitMix64(Fnv1a64(name) ^ (ulong)draw);
        for (int i = 0; i < values.Length; i++)
        {
            double u = (SplitMix64(key + (ulong)i) >> 11) * (1.0 / (1UL << 53));
            double factor = 1.0 + perturbation * (2.0 * u - 1.0);
            values[i] = (float)(values[i] * factor);
        }
    }

    private static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB;
        return x ^ (x >> 31);
    }

    private static ulong Fnv1a64(string text)
    {
        ulong h = 0xCBF29CE484222325;
        foreach (byte b in Encoding.UTF8.GetBytes(text)) h = (h ^ b) * 0x100000001B3;
        return h;
    }
}

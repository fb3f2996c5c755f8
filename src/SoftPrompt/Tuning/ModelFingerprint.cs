using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tuning;

/// <summary>
/// Identifies the frozen model a prompt belongs to: SHA-256 over the architecture and the token
/// embedding table (as float32), so a prompt can never be silently loaded onto another model.
/// </summary>
public static class ModelFingerprint
{
    public static string Of<T>(Gpt2Weights<T> weights) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var c = weights.Config;
        return Of($"gpt2|{c.VocabSize}|{c.MaxPositions}|{c.Embedding}|{c.Layers}|{c.Heads}|{c.Inner}|", weights.TokenEmbedding);
    }

    public static string Of<T>(T5Weights<T> weights) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        var c = weights.Config;
        return Of($"t5|{c.VocabSize}|{c.Embedding}|{c.HeadSize}|{c.FeedForwardSize}|{c.Layers}|{c.DecoderLayers}|{c.Heads}|"
            + $"{c.RelativeBuckets}|{c.RelativeMaxDistance}|{c.FeedForwardProjection}|{(c.TiedEmbeddings ? "tied" : "untied")}|", weights.TokenEmbedding);
    }

    private static string Of<T>(string architecture, T[] table) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(architecture));
        Span<float> chunk = stackalloc float[4096];
        for (int start = 0; start < table.Length; start += chunk.Length)
        {
            int count = Math.Min(chunk.Length, table.Length - start);
            for (int i = 0; i < count; i++) chunk[i] = float.CreateTruncating(table[start + i]);
            hash.AppendData(MemoryMarshal.AsBytes(chunk[..count]));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}

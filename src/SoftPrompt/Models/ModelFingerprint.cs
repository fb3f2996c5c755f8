using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Models;

/// <summary>
/// Identifies the frozen model a prompt belongs to: SHA-256 over the architecture and the token
/// embedding table (as float32), so a prompt can never be silently loaded onto another model.
/// </summary>
public static class ModelFingerprint
{
    public static string Of<T>(Gpt2Weights<T> weights) where T : unmanaged, IBinaryFloatingPointIeee754<T> => Of(weights.Config, weights.TokenEmbedding);

    public static string Of<T>(T5Weights<T> weights) where T : unmanaged, IBinaryFloatingPointIeee754<T> => Of(weights.Config, weights.TokenEmbedding);

    /// <param name="tokenEmbedding">wte [V, d].</param>
    public static string Of<T>(Gpt2Config c, T[] tokenEmbedding) where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        Of($"gpt2|{c.VocabSize}|{c.MaxPositions}|{c.Embedding}|{c.Layers}|{c.Heads}|{c.Inner}|"
            + (c.ScaleAttentionWeights ? "" : "unscaled|") + (c.ScaleAttentionByInverseLayerIndex ? "layer-scaled|" : "") + (c.TiedEmbeddings ? "" : "untied|"), tokenEmbedding);

    /// <param name="tokenEmbedding">shared [V, d].</param>
    public static string Of<T>(T5Config c, T[] tokenEmbedding) where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        Of($"t5|{c.VocabSize}|{c.Embedding}|{c.HeadSize}|{c.FeedForwardSize}|{c.Layers}|{c.DecoderLayers}|{c.Heads}|"
            + $"{c.RelativeBuckets}|{c.RelativeMaxDistance}|{c.FeedForwardProjection}|{(c.TiedEmbeddings ? "tied" : "untied")}|"
            + (c.RescalesDecoderOutput == c.TiedEmbeddings ? "" : c.RescalesDecoderOutput ? "rescaled|" : "unscaled|"), tokenEmbedding);

    public static string Of<T>(LlamaWeights<T> weights) where T : unmanaged, IBinaryFloatingPointIeee754<T> => Of(weights.Config, weights.TokenEmbedding);

    /// <param name="tokenEmbedding">embed_tokens [V, d].</param>
    public static string Of<T>(LlamaConfig c, T[] tokenEmbedding) where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        Of($"llama|{c.VocabSize}|{c.Embedding}|{c.Layers}|{c.Heads}|{c.KeyValueHeads}|{c.HeadSize}|{c.Intermediate}|{c.MaxPositions}|"
            + $"{c.RmsNormEpsilon:R}|{c.RopeTheta:R}|{c.RopeScaling}|{(c.TiedEmbeddings ? "tied" : "untied")}|"
            + (c.QueryKeyValueBiases ? "qkv-bias|" : "") + (c.OutputBias ? "o-bias|" : ""), tokenEmbedding);  // bias-free models keep their fingerprints

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

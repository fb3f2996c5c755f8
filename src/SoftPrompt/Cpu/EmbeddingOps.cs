using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>Input embeddings with soft prompts spliced in front, and the prompt-gradient reduction.</summary>
public static unsafe class EmbeddingOps
{
    /// <summary>
    /// x [B, T, C]; tokens [B, T − P] (row stride T − P); prompts [numPrompts, P, C]; promptIndex [B];
    /// wte [V, C]; wpe [≥T, C].
    /// x[b, t] = (t &lt; P ? prompts[promptIndex[b], t] : wte[tokens[b, t − P]]) + wpe[t]. Ids must be valid.
    /// </summary>
    public static void Forward<T>(Span<T> x, ReadOnlySpan<int> tokens, ReadOnlySpan<T> prompts, ReadOnlySpan<int> promptIndex,
        ReadOnlySpan<T> wte, ReadOnlySpan<T> wpe, int batch, int sequence, int promptLength, int channels)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int tokenLength = sequence - promptLength;
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < sequence; t++)
            {
                var row = x.Slice((b * sequence + t) * channels, channels);
                var source = t < promptLength
                    ? prompts.Slice((promptIndex[b] * promptLength + t) * channels, channels)
                    : wte.Slice(tokens[b * tokenLength + t - promptLength] * channels, channels);
                TensorPrimitives.Add(source, wpe.Slice(t * channels, channels), row);
            }
        }
    }

    /// <summary>
    /// dPrompts [numPrompts, P, C] = Σ over rows b with promptIndex[b] = p of dx[b, t &lt; P] (overwrites,
    /// or adds when <paramref name="accumulate"/>). Rows are summed in order: bit-reproducible, no atomics.
    /// dx [B, T, C].
    /// </summary>
    public static void PromptGradient<T>(Span<T> dPrompts, ReadOnlySpan<T> dx, ReadOnlySpan<int> promptIndex,
        int batch, int sequence, int promptLength, int promptCount, int channels, bool accumulate)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (!accumulate) dPrompts[..(promptCount * promptLength * channels)].Clear();
        for (int b = 0; b < batch; b++)
        {
            int p = promptIndex[b];
            var source = dx.Slice(b * sequence * channels, promptLength * channels);
            var target = dPrompts.Slice(p * promptLength * channels, promptLength * channels);
            TensorPrimitives.Add(target, source, target);
        }
    }
}

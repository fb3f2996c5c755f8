using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>Input embeddings with soft prompts spliced in front, and the prompt-gradient reduction.</summary>
public static unsafe class EmbeddingOps
{
    /// <summary>
    /// x [B, T, C]; tokens [B, tokenLength] (row stride tokenLength); prompts [ΣP_k, C], prompt k at rows
    /// [promptOffsets[k], promptOffsets[k + 1]); promptIndex [B]; promptOffsets [K + 1] (empty: no prompts);
    /// wte [V, C]; wpe [≥T, C], or empty for none (RoPE models). With k = promptIndex[b], o = promptOffsets[k], P_b = promptOffsets[k + 1] − o:
    /// x[b, t] = (t &lt; P_b ? prompts[o + t] : t − P_b &lt; tokenLength ? wte[tokens[b, t − P_b]] : 0) + wpe[t]
    /// (the zero fills the positions a row with a shorter prompt leaves after its token row). Ids must be valid.
    /// </summary>
    public static void Forward<T>(Span<T> x, ReadOnlySpan<int> tokens, ReadOnlySpan<T> prompts, ReadOnlySpan<int> promptIndex,
        ReadOnlySpan<int> promptOffsets, ReadOnlySpan<T> wte, ReadOnlySpan<T> wpe, int batch, int sequence, int tokenLength, int channels)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Embedding);
        for (int b = 0; b < batch; b++)
        {
            int offset = 0, promptLength = 0;
            if (!promptOffsets.IsEmpty)
            {
                int k = promptIndex[b];
                offset = promptOffsets[k];
                promptLength = promptOffsets[k + 1] - offset;
            }
            for (int t = 0; t < sequence; t++)
            {
                var row = x.Slice((b * sequence + t) * channels, channels);
                int token = t - promptLength;
                if (t < promptLength) AddPosition(row, prompts.Slice((offset + t) * channels, channels), wpe, t);
                else if (token < tokenLength) AddPosition(row, wte.Slice(tokens[b * tokenLength + token] * channels, channels), wpe, t);
                else AddPosition(row, default, wpe, t);
            }
        }
    }

    /// <summary>row = vector (absent: zeros) + wpe[position] (absent: nothing).</summary>
    public static void AddPosition<T>(Span<T> row, ReadOnlySpan<T> vector, ReadOnlySpan<T> wpe, int position)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Embedding);
        int channels = row.Length;
        if (wpe.IsEmpty)
        {
            if (vector.IsEmpty) row.Clear();
            else vector.CopyTo(row);
        }
        else if (vector.IsEmpty) wpe.Slice(position * channels, channels).CopyTo(row);
        else TensorPrimitives.Add(vector, wpe.Slice(position * channels, channels), row);
    }

    /// <summary>
    /// dPrompts [ΣP_k, C]: prompt k's rows = Σ over batch rows b with promptIndex[b] = k of dx[b, t &lt; P_k] (overwrites,
    /// or adds when <paramref name="accumulate"/>). Rows are summed in order: bit-reproducible, no atomics.
    /// dx [B, T, C]; promptOffsets [K + 1] as in <see cref="Forward{T}"/>.
    /// </summary>
    public static void PromptGradient<T>(Span<T> dPrompts, ReadOnlySpan<T> dx, ReadOnlySpan<int> promptIndex, ReadOnlySpan<int> promptOffsets,
        int batch, int sequence, int channels, bool accumulate)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Embedding);
        if (!accumulate) dPrompts[..(promptOffsets[^1] * channels)].Clear();
        for (int b = 0; b < batch; b++)
        {
            int k = promptIndex[b], offset = promptOffsets[k], length = promptOffsets[k + 1] - offset;
            var source = dx.Slice(b * sequence * channels, length * channels);
            var target = dPrompts.Slice(offset * channels, length * channels);
            TensorPrimitives.Add(target, source, target);
        }
    }
}

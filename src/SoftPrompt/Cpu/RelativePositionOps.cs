using System.Numerics;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Cpu;

/// <summary>T5's relative position bias: bucketed key−query distances (<see cref="T5RelativeBuckets.Bucket"/>) looked up in a [num_buckets, H] table.</summary>
public static class RelativePositionOps
{
    /// <summary>
    /// bias [H, Tq, Tk] = table[Bucket(j − i), h] for query i, key j; table [numBuckets, H] (HF's relative_attention_bias.weight).
    /// One bucket per diagonal, so Tq + Tk − 1 logarithms however long the sequences.
    /// </summary>
    public static void Bias<T>(Span<T> bias, ReadOnlySpan<T> table, int heads, int queryLength, int keyLength,
        bool bidirectional, int numBuckets, int maxDistance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        if (bias.Length < (long)heads * queryLength * keyLength || table.Length < numBuckets * heads)
            throw new ArgumentException($"Relative position bias: buffers too short for H={heads}, Tq={queryLength}, Tk={keyLength}, {numBuckets} buckets.");
        for (int offset = 1 - queryLength; offset < keyLength; offset++)
        {
            int bucket = T5RelativeBuckets.Bucket(offset, bidirectional, numBuckets, maxDistance);
            int firstQuery = Math.Max(0, -offset), lastQuery = Math.Min(queryLength, keyLength - offset);
            for (int h = 0; h < heads; h++)
            {
                T value = table[bucket * heads + h];
                var plane = bias.Slice(h * queryLength * keyLength, queryLength * keyLength);
                for (int i = firstQuery; i < lastQuery; i++) plane[i * keyLength + i + offset] = value;
            }
        }
    }
}

using System.Numerics;

namespace SoftPrompt.Cpu;

/// <summary>T5's relative position bias: bucketed key−query distances looked up in a [num_buckets, H] table.</summary>
public static class RelativePositionOps
{
    /// <summary>
    /// Hugging Face's <c>T5Attention._relative_position_bucket</c> for relativePosition = key position − query position.
    /// Bidirectional (encoder): half the buckets for keys after the query, half for the rest; causal (decoder): only
    /// keys at or before the query count, later ones fall in bucket 0. Within a half, the first half of the buckets are
    /// exact distances and the rest grow logarithmically up to maxDistance, beyond which everything shares the last bucket.
    /// The logarithmic branch is evaluated in float32, as HF does, so boundaries fall on the same distances.
    /// </summary>
    public static int Bucket(int relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        int bucket = 0, distance;
        if (bidirectional)
        {
            numBuckets /= 2;
            if (relativePosition > 0) bucket = numBuckets;
            distance = Math.Abs(relativePosition);
        }
        else distance = Math.Max(-relativePosition, 0);
        int maxExact = numBuckets / 2;
        if (distance < maxExact) return bucket + distance;
        float scaled = MathF.Log(distance / (float)maxExact) / (float)Math.Log((double)maxDistance / maxExact) * (numBuckets - maxExact);
        return bucket + Math.Min(maxExact + (int)scaled, numBuckets - 1);
    }

    /// <summary>
    /// bias [H, Tq, Tk] = table[Bucket(j − i), h] for query i, key j; table [numBuckets, H] (HF's relative_attention_bias.weight).
    /// One bucket per diagonal, so Tq + Tk − 1 logarithms however long the sequences.
    /// </summary>
    public static void Bias<T>(Span<T> bias, ReadOnlySpan<T> table, int heads, int queryLength, int keyLength,
        bool bidirectional, int numBuckets, int maxDistance)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (bias.Length < (long)heads * queryLength * keyLength || table.Length < numBuckets * heads)
            throw new ArgumentException($"Relative position bias: buffers too short for H={heads}, Tq={queryLength}, Tk={keyLength}, {numBuckets} buckets.");
        for (int offset = 1 - queryLength; offset < keyLength; offset++)
        {
            int bucket = Bucket(offset, bidirectional, numBuckets, maxDistance);
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

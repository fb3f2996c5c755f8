namespace SoftPrompt.Models.T5;

/// <summary>
/// T5's relative position buckets: which row of the [num_buckets, H] bias table a key − query distance reads. The CPU
/// ops (<c>Cpu.RelativePositionOps.Bias</c>) look them up per diagonal; the kernels' launchers upload <see cref="Compute"/>'s
/// array once per shape and the kernels add <c>biasTable[bucketByOffset[j − i + Tq − 1]·H + h]</c> to s_ij.
/// </summary>
public static class T5RelativeBuckets
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

    /// <summary>Entries of the bucket array of a (Tq, Tk) attention: one per diagonal, Tq + Tk − 1.</summary>
    public static int Length(int queryLength, int keyLength) => queryLength + keyLength - 1;

    /// <summary>
    /// bucketByOffset[j − i + Tq − 1] = <see cref="Bucket"/>(j − i, …) for every key − query offset
    /// j − i in [1 − Tq, Tk − 1]; bucketByOffset must hold at least Tq + Tk − 1 entries (the rest is left alone).
    /// </summary>
    public static void Compute(int queryLength, int keyLength, bool bidirectional, int numBuckets, int maxDistance, Span<int> bucketByOffset)
    {
        if (queryLength < 1 || keyLength < 1)
            throw new ArgumentException($"Relative buckets: query length {queryLength} and key length {keyLength} must be at least 1.");
        if (numBuckets < (bidirectional ? 4 : 2) || maxDistance < 1)
            throw new ArgumentException($"Relative buckets: {numBuckets} buckets (max distance {maxDistance}) cannot hold the exact and logarithmic ranges.");
        int length = Length(queryLength, keyLength);
        if (bucketByOffset.Length < length)
            throw new ArgumentException($"Relative buckets: Tq = {queryLength}, Tk = {keyLength} need {length} entries, the span holds {bucketByOffset.Length}.", nameof(bucketByOffset));
        for (int offset = 1 - queryLength; offset < keyLength; offset++)
            bucketByOffset[offset + queryLength - 1] = Bucket(offset, bidirectional, numBuckets, maxDistance);
    }
}

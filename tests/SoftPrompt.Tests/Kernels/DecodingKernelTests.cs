using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>The KV-cached decoding kernels (kernels/decoding.cu) against CPU references, on the emulator and on a GPU.</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class DecodingKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    /// <summary>Random key ranges: a shared prefix region (prompts) then each row's own rows, key lengths as given.</summary>
    private static (int[] RowKeys, int CacheRows) KeyRanges(int[] keyLengths, int seed)
    {
        var random = new Random(seed);
        const int prefixRows = 9;
        int rows = keyLengths.Length, own = keyLengths.Max();
        var keys = new int[4 * rows];
        for (int i = 0; i < rows; i++)
        {
            int prefix = Math.Min(random.Next(0, prefixRows + 1), keyLengths[i] - 1);
            keys[4 * i] = random.Next(0, prefixRows - prefix + 1);
            keys[4 * i + 1] = prefix;
            keys[4 * i + 2] = prefixRows + i * own;
            keys[4 * i + 3] = keyLengths[i];
        }
        return (keys, prefixRows + rows * own);
    }

    /// <summary>
    /// Attention of each (row, head) over its key range in double: the reference the split + combine must give. With
    /// <paramref name="distanceBias"/> [heads, distances], key j of a row of key length L scores + bias[h, L − 1 − j].
    /// </summary>
    private static float[] Reference(float[] q, int qStride, float[] kCache, float[] vCache, int cacheStride, int[] rowKeys, int rows, int heads, int kvHeads, int headSize, float scale,
        float[]? distanceBias = null, int distances = 0)
    {
        var output = new float[rows * heads * headSize];
        for (int i = 0; i < rows; i++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / (heads / kvHeads), keys = rowKeys[4 * i + 3];
                var scores = new double[keys];
                for (int j = 0; j < keys; j++)
                {
                    int row = j < rowKeys[4 * i + 1] ? rowKeys[4 * i] + j : rowKeys[4 * i + 2] + j - rowKeys[4 * i + 1];
                    double dot = 0;
                    for (int c = 0; c < headSize; c++) dot += (double)q[i * qStride + h * headSize + c] * kCache[row * cacheStride + g * headSize + c];
                    scores[j] = dot * scale + (distanceBias is null ? 0 : distanceBias[h * distances + keys - 1 - j]);
                }
                double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                for (int c = 0; c < headSize; c++)
                {
                    double o = 0;
                    for (int j = 0; j < keys; j++)
                    {
                        int row = j < rowKeys[4 * i + 1] ? rowKeys[4 * i] + j : rowKeys[4 * i + 2] + j - rowKeys[4 * i + 1];
                        o += Math.Exp(scores[j] - max) / sum * vCache[row * cacheStride + g * headSize + c];
                    }
                    output[(i * heads + h) * headSize + c] = (float)o;
                }
            }
        return output;
    }

    // rows, heads, kv heads, head size, split size, splits, key lengths, element offset (1: rows misaligned, scalar loads)
    [TestCase(3, 4, 2, 64, 64, 3, new[] { 1, 130, 70 }, 0)]
    [TestCase(2, 2, 2, 128, 64, 2, new[] { 65, 128 }, 0)]
    [TestCase(4, 6, 2, 37, 5, 4, new[] { 1, 13, 20, 7 }, 0)]
    [TestCase(2, 4, 1, 64, 7, 5, new[] { 33, 2 }, 1)]
    [TestCase(2, 2, 1, 256, 16, 3, new[] { 40, 17 }, 0)]
    [TestCase(3, 3, 3, 16, 3, 6, new[] { 18, 1, 11 }, 0)]
    public void SplitsAndCombineMatchTheCpuReference(int rows, int heads, int kvHeads, int headSize, int splitSize, int splits, int[] keyLengths, int offset)
    {
        var (rowKeys, cacheRows) = KeyRanges(keyLengths, seed: rows + headSize);
        int qStride = heads * headSize + 3, cacheStride = kvHeads * headSize + (offset == 0 ? 0 : 1);
        float scale = 1f / MathF.Sqrt(headSize);
        var q = RandomFloats(rows * qStride, seed: 1);
        var kCache = RandomFloats(cacheRows * cacheStride, seed: 2, -2f, 2f);
        var vCache = RandomFloats(cacheRows * cacheStride, seed: 3);
        using var dq = Put(q, offset);
        using var dk = Put(kCache, offset);
        using var dv = Put(vCache, offset);
        using var keys = Put(rowKeys);
        using var output = Zeros<float>(rows * heads * headSize);
        using var partialOut = Zeros<float>(rows * heads * splits * headSize);
        using var partialMax = Zeros<float>(rows * heads * splits);
        using var partialSum = Zeros<float>(rows * heads * splits);
        DecodeAttention.Launch(Device, output.Span, heads * headSize, dq.Span, qStride, dk.Span, dv.Span, cacheStride, keys.Span, partialOut.Span, partialMax.Span, partialSum.Span,
            rows, heads, kvHeads, headSize, splitSize, splits, scale);
        var expected = Reference(q, qStride, kCache, vCache, cacheStride, rowKeys, rows, heads, kvHeads, headSize, scale);
        AssertClose(output.Read(), expected, 1e-5, 1e-6, "attention output");
    }

    // rows, heads, head size, split size, splits, key lengths: the bias by distance back (T5's decoder self-attention)
    [TestCase(3, 4, 64, 64, 3, new[] { 1, 130, 70 })]
    [TestCase(4, 3, 37, 5, 4, new[] { 1, 13, 20, 7 })]
    public void DistanceBiasIsAddedByEachKeysDistanceBack(int rows, int heads, int headSize, int splitSize, int splits, int[] keyLengths)
    {
        var (rowKeys, cacheRows) = KeyRanges(keyLengths, seed: rows + headSize);
        int width = heads * headSize, distances = keyLengths.Max() + 2;
        var q = RandomFloats(rows * width, seed: 1);
        var kCache = RandomFloats(cacheRows * width, seed: 2, -2f, 2f);
        var vCache = RandomFloats(cacheRows * width, seed: 3);
        var bias = RandomFloats(heads * distances, seed: 4, -3f, 3f);
        using var dq = Put(q);
        using var dk = Put(kCache);
        using var dv = Put(vCache);
        using var keys = Put(rowKeys);
        using var dBias = Put(bias);
        using var output = Zeros<float>(rows * width);
        using var partialOut = Zeros<float>(rows * heads * splits * headSize);
        using var partialMax = Zeros<float>(rows * heads * splits);
        using var partialSum = Zeros<float>(rows * heads * splits);
        DecodeAttention.Launch(Device, output.Span, width, dq.Span, width, dk.Span, dv.Span, width, keys.Span, partialOut.Span, partialMax.Span, partialSum.Span,
            rows, heads, heads, headSize, splitSize, splits, scale: 1f, dBias.Span, distances);
        var expected = Reference(q, width, kCache, vCache, width, rowKeys, rows, heads, heads, headSize, 1f, bias, distances);
        AssertClose(output.Read(), expected, 1e-5, 1e-6, "attention output with the distance bias");
        Assert.That(() => DecodeAttention.Launch(Device, output.Span, width, dq.Span, width, dk.Span, dv.Span, width, keys.Span, partialOut.Span, partialMax.Span,
            partialSum.Span, rows, heads, heads, headSize, splitSize, splits, 1f, dBias.Span, biasDistances: bias.Length), Throws.ArgumentException.With.Message.Contains("[heads, distances]"));
    }

    [TestCase(1, 1, 1)]
    [TestCase(64, 32, 1)]
    [TestCase(65, 32, 2)]
    [TestCase(5000, 32, 32)]
    [TestCase(3000, 32, 32)]
    public void SplitsKeepAtLeastTheMinimumAndCoverTheKeys(int keyLength, int maxSplits, int expectedSplits)
    {
        var (size, splits) = DecodeAttention.Splits(keyLength, maxSplits);
        Assert.That(splits, Is.EqualTo(expectedSplits));
        Assert.That(size, Is.GreaterThanOrEqualTo(DecodeAttention.MinSplitSize));
        Assert.That((long)size * splits, Is.GreaterThanOrEqualTo(keyLength));
    }

    [Test]
    public void EmbeddingReadsTokensOrPromptRowsAtEachRowsOwnPosition()
    {
        const int rows = 5, channels = 6, vocab = 7;
        int[] tokens = [3, -1, 0, -1, 6], promptRows = [0, 2, 0, 1, 0], positions = [4, 0, 9, 1, 2];
        var prompts = RandomFloats(3 * channels, seed: 4);
        var wte = RandomFloats(vocab * channels, seed: 5);
        var wpe = RandomFloats(10 * channels, seed: 6);
        using var x = Zeros<float>(rows * channels);
        using var dt = Put(tokens);
        using var dr = Put(promptRows);
        using var dp = Put(positions);
        using var dPrompts = Put(prompts);
        using var dWte = Put(wte);
        using var dWpe = Put(wpe);
        foreach (bool withPositions in new[] { true, false })
        {
            DecodeEmbedding.Launch(Device, x.Span, dt.Span, dr.Span, dp.Span, dPrompts.Span, dWte.Span, withPositions ? dWpe.Span : default, rows, channels);
            var actual = x.Read();
            for (int i = 0; i < rows; i++)
                for (int c = 0; c < channels; c++)
                {
                    float source = tokens[i] >= 0 ? wte[tokens[i] * channels + c] : prompts[promptRows[i] * channels + c];
                    Assert.That(actual[i * channels + c], Is.EqualTo(withPositions ? source + wpe[positions[i] * channels + c] : source), $"row {i}, channel {c}");
                }
        }
    }

    [Test]
    public void AppendWritesEachRowAtItsOwnNextCacheRow()
    {
        const int width = 5, cacheRows = 12;
        // Row 0: prefix 3, own rows from 4, key length 6 → own position 2 → cache row 6. Row 1: no prefix, own from 9, length 1 → row 9.
        int[] rowKeys = [0, 3, 4, 6, 0, 0, 9, 1];
        var fused = RandomFloats(2 * 3 * width, seed: 7);  // [2, 3·width]: q | k | v
        using var k = Zeros<float>(cacheRows * width);
        using var v = Zeros<float>(cacheRows * width);
        using var source = Put(fused);
        using var keys = Put(rowKeys);
        KeyValueCacheAppend.Launch(Device, k.Span, v.Span, source.Span.Slice(width), 3 * width, source.Span.Slice(2 * width), 3 * width, keys.Span, 2, width, width);
        var kc = k.Read();
        var vc = v.Read();
        foreach (var (row, cacheRow) in new[] { (0, 6), (1, 9) })
            for (int c = 0; c < width; c++)
            {
                Assert.That(kc[cacheRow * width + c], Is.EqualTo(fused[row * 3 * width + width + c]));
                Assert.That(vc[cacheRow * width + c], Is.EqualTo(fused[row * 3 * width + 2 * width + c]));
            }
        Assert.That(kc.Count(x => x != 0), Is.EqualTo(2 * width), "no other cache row written");
    }
}

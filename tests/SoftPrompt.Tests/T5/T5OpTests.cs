using SoftPrompt.Checkpoints;
using SoftPrompt.Cpu;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tests.T5;

/// <summary>The T5 CPU ops: backward passes against central finite differences in float64, buckets against HF's values.</summary>
public sealed class T5OpTests
{
    private const double H = 1e-5;

    private static double[] Random(int count, int seed, double scale = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => scale * (2 * random.NextDouble() - 1)).ToArray();
    }

    private static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    /// <summary>Central difference of f at every coordinate of x, compared with the analytic gradient.</summary>
    private static double WorstRelativeError(double[] x, double[] analytic, Func<double> f)
    {
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + H;
            double up = f();
            x[i] = saved - H;
            double down = f();
            x[i] = saved;
            double numeric = (up - down) / (2 * H);
            worst = Math.Max(worst, Math.Abs(numeric - analytic[i]) / Math.Max(1e-3, Math.Abs(numeric) + Math.Abs(analytic[i])));
        }
        return worst;
    }

    [TestCase(1, 1)]
    [TestCase(5, 7)]
    [TestCase(3, 33)]
    public void RmsNormBackwardMatchesFiniteDifferencesAndAccumulates(int rows, int channels)
    {
        double[] x = Random(rows * channels, 1, 3), weight = Random(channels, 2), dy = Random(rows * channels, 3);
        const double eps = 1e-6;
        double Loss()
        {
            var y = new double[x.Length];
            RmsNormOps.Forward<double>(y, new double[rows], x, weight, rows, channels, eps);
            return Dot(y, dy);
        }
        var output = new double[x.Length];
        var rstd = new double[rows];
        RmsNormOps.Forward<double>(output, rstd, x, weight, rows, channels, eps);
        for (int r = 0; r < rows; r++)
        {
            double meanSquare = x.Skip(r * channels).Take(channels).Sum(v => v * v) / channels;
            Assert.That(rstd[r], Is.EqualTo(1 / Math.Sqrt(meanSquare + eps)).Within(1e-12), "rstd = 1/sqrt(mean(x²) + eps)");
            Assert.That(output[r * channels], Is.EqualTo(x[r * channels] * rstd[r] * weight[0]).Within(1e-12), "no mean, no bias");
        }
        double[] start = Random(rows * channels, 4), dx = (double[])start.Clone();
        RmsNormOps.Backward<double>(dx, dy, x, weight, rstd, rows, channels);
        double[] added = dx.Zip(start, (a, b) => a - b).ToArray();
        Assert.That(WorstRelativeError(x, added, Loss), Is.LessThan(1e-6));
    }

    /// <summary>Cross-attention shape (Tq ≠ Tk, padded keys), encoder self-attention with bias and padding, and causal decoder self-attention.</summary>
    [TestCase(2, 3, 5, 2, 3, true, false, false, TestName = "{m}(cross, padded keys, no bias)")]
    [TestCase(2, 4, 4, 2, 3, true, true, false, TestName = "{m}(encoder: bias + padded keys)")]
    [TestCase(2, 4, 4, 3, 2, false, true, true, TestName = "{m}(decoder: bias + causal)")]
    [TestCase(1, 1, 1, 1, 1, false, true, true, TestName = "{m}(T=1)")]
    [TestCase(2, 4, 4, 3, 2, false, true, true, 0.37, TestName = "{m}(decoder: bias + causal, scale 0.37)")]
    [TestCase(2, 5, 5, 2, 3, false, false, true, 0.5773502691896258, TestName = "{m}(GPT-2: causal, scale 1/√hs)")]
    public void BiasedAttentionBackwardMatchesFiniteDifferences(int batch, int tq, int tk, int heads, int headSize, bool padKeys, bool withBias, bool causal,
        double scale = 1)
    {
        int width = heads * headSize;
        double[] q = Random(batch * tq * width, 11), k = Random(batch * tk * width, 12), v = Random(batch * tk * width, 13);
        double[] bias = withBias ? Random(heads * tq * tk, 14, 2) : [];
        double[] dout = Random(batch * tq * width, 15);
        int[] keyLengths = padKeys ? Enumerable.Range(0, batch).Select(b => Math.Max(1, tk - 2 * b - 1)).ToArray() : [];
        double Loss()
        {
            var o = new double[dout.Length];
            BiasedAttentionOps.Forward<double>(o, new double[batch * heads * tq], q, k, v, bias, keyLengths, batch, tq, tk, heads, headSize, causal, scale);
            return Dot(o, dout);
        }
        var output = new double[dout.Length];
        var lse = new double[batch * heads * tq];
        BiasedAttentionOps.Forward<double>(output, lse, q, k, v, bias, keyLengths, batch, tq, tk, heads, headSize, causal, scale);
        double[] dq = new double[q.Length], dk = Random(k.Length, 16), dv = Random(v.Length, 17); // overwritten, garbage in
        BiasedAttentionOps.Backward<double>(dq, dk, dv, dout, q, k, v, output, lse, bias, keyLengths, batch, tq, tk, heads, headSize, causal, scale);
        Assert.That(WorstRelativeError(q, dq, Loss), Is.LessThan(1e-6), "dq");
        Assert.That(WorstRelativeError(k, dk, Loss), Is.LessThan(1e-6), "dk");
        Assert.That(WorstRelativeError(v, dv, Loss), Is.LessThan(1e-6), "dv");
        if (padKeys)
        {
            for (int b = 0; b < batch; b++)
                for (int t = keyLengths[b]; t < tk; t++)
                    Assert.That(dk.AsSpan((b * tk + t) * width, width).ToArray(), Is.All.EqualTo(0.0), $"masked key {t} of row {b}");
        }
    }

    [Test]
    public void BiasedAttentionForwardMatchesANaiveSoftmax()
    {
        const int tq = 3, tk = 4, heads = 2, headSize = 2, width = heads * headSize;
        double[] q = Random(tq * width, 21), k = Random(tk * width, 22), v = Random(tk * width, 23), bias = Random(heads * tq * tk, 24);
        var output = new double[tq * width];
        BiasedAttentionOps.Forward<double>(output, new double[heads * tq], q, k, v, bias, [3], 1, tq, tk, heads, headSize, causal: false, scale: 1.0);
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < tq; i++)
            {
                // No 1/sqrt(d_kv): T5's scores are the raw dot products plus the position bias; key 3 is padding.
                var scores = Enumerable.Range(0, 3).Select(j =>
                    Enumerable.Range(0, headSize).Sum(c => q[i * width + h * headSize + c] * k[j * width + h * headSize + c]) + bias[(h * tq + i) * tk + j]).ToArray();
                double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                for (int c = 0; c < headSize; c++)
                {
                    double expected = Enumerable.Range(0, 3).Sum(j => Math.Exp(scores[j] - max) / sum * v[j * width + h * headSize + c]);
                    Assert.That(output[i * width + h * headSize + c], Is.EqualTo(expected).Within(1e-12));
                }
            }
        }
    }

    /// <summary>
    /// GPT-2's attention (<see cref="AttentionOps"/>, fused qkv) is the biased op without bias or key lengths, causal, with
    /// scale 1/√hs, on the q, k, v column slices of qkv: the identity the CUDA engines rely on (one kernel family).
    /// </summary>
    [TestCase(2, 5, 12, 3)]
    [TestCase(1, 1, 8, 2)]
    public void BiasedAttentionWithScaleIsGpt2Attention(int batch, int sequence, int channels, int heads)
    {
        int rows = batch * sequence, c3 = 3 * channels, hs = channels / heads;
        double[] qkv = Random(rows * c3, 41, 2), dout = Random(rows * channels, 42);
        double[] Part(int part) => Enumerable.Range(0, rows * channels).Select(i => qkv[i / channels * c3 + part * channels + i % channels]).ToArray();
        double[] q = Part(0), k = Part(1), v = Part(2);

        var expectedOut = new double[rows * channels];
        var expectedLse = new double[batch * heads * sequence];
        AttentionOps.Forward<double>(expectedOut, expectedLse, qkv, batch, sequence, channels, heads);
        var expectedDqkv = new double[qkv.Length];
        AttentionOps.Backward<double>(expectedDqkv, dout, qkv, expectedOut, expectedLse, batch, sequence, channels, heads);

        var output = new double[rows * channels];
        var lse = new double[batch * heads * sequence];
        double scale = 1 / Math.Sqrt(hs);
        BiasedAttentionOps.Forward<double>(output, lse, q, k, v, [], [], batch, sequence, sequence, heads, hs, causal: true, scale);
        double[] dq = new double[q.Length], dk = new double[k.Length], dv = new double[v.Length];
        BiasedAttentionOps.Backward<double>(dq, dk, dv, dout, q, k, v, output, lse, [], [], batch, sequence, sequence, heads, hs, causal: true, scale);

        Assert.That(output, Is.EqualTo(expectedOut).Within(1e-12), "out");
        Assert.That(lse, Is.EqualTo(expectedLse).Within(1e-12), "lse");
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < channels; j++)
            {
                Assert.That(dq[r * channels + j], Is.EqualTo(expectedDqkv[r * c3 + j]).Within(1e-12), $"dq row {r} column {j}");
                Assert.That(dk[r * channels + j], Is.EqualTo(expectedDqkv[r * c3 + channels + j]).Within(1e-12), $"dk row {r} column {j}");
                Assert.That(dv[r * channels + j], Is.EqualTo(expectedDqkv[r * c3 + 2 * channels + j]).Within(1e-12), $"dv row {r} column {j}");
            }
    }

    [Test]
    public void ZeroKeyLengthIsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => BiasedAttentionOps.Forward<double>(new double[4], new double[2], new double[4], new double[4], new double[4],
            [], [0], 1, 2, 2, 1, 2, causal: false, scale: 1.0))!;
        Assert.That(error.Message, Does.Contain("row 0 has key length 0"));
    }

    [Test]
    public void GatedGeluAndReluBackwardMatchFiniteDifferences()
    {
        double[] gate = Random(17, 31, 3), linear = Random(17, 32, 2), dy = Random(17, 33);
        double Gated()
        {
            var y = new double[17];
            GatedGeluOps.Forward<double>(y, gate, linear);
            return Dot(y, dy);
        }
        double[] dGate = new double[17], dLinear = new double[17];
        GatedGeluOps.Backward<double>(dGate, dLinear, dy, gate, linear);
        Assert.That(WorstRelativeError(gate, dGate, Gated), Is.LessThan(1e-6), "d gate");
        Assert.That(WorstRelativeError(linear, dLinear, Gated), Is.LessThan(1e-6), "d linear");

        double[] x = Random(17, 34, 3), relu = new double[17], dx = new double[17];
        ReluOps.Forward<double>(relu, x);
        Assert.That(relu, Is.EqualTo(x.Select(v => Math.Max(v, 0)).ToArray()));
        ReluOps.Backward<double>(dx, dy, x);
        Assert.That(dx, Is.EqualTo(x.Zip(dy, (a, g) => a > 0 ? g : 0).ToArray()));
    }

    // Hand-computed from HF's formula for its defaults (32 buckets, max distance 128); relative position = key − query.
    // Bidirectional: 16 buckets per side, 8 exact; keys after the query add 16. Causal: 32 buckets, 16 exact, later keys → 0.
    [TestCase(0, true, 0)]
    [TestCase(1, true, 17)]
    [TestCase(-1, true, 1)]
    [TestCase(7, true, 23)]
    [TestCase(-8, true, 8)]
    [TestCase(12, true, 25)]  // 8 + ⌊ln(12/8)/ln(16)·8⌋ = 8 + 1
    [TestCase(16, true, 26)]  // exactly on a boundary: ln 2 / ln 16 · 8 = 2
    [TestCase(32, true, 28)]
    [TestCase(-64, true, 14)]
    [TestCase(127, true, 31)]
    [TestCase(-500, true, 15)]
    [TestCase(5, false, 0)]
    [TestCase(-1, false, 1)]
    [TestCase(-15, false, 15)]
    [TestCase(-20, false, 17)]  // 16 + ⌊ln(20/16)/ln(8)·16⌋ = 16 + 1
    [TestCase(-32, false, 21)]  // 16 + ⌊16/3⌋
    [TestCase(-64, false, 26)]
    [TestCase(-1000, false, 31)]
    public void BucketMatchesHandComputedValues(int relative, bool bidirectional, int expected)
        => Assert.That(T5RelativeBuckets.Bucket(relative, bidirectional, 32, 128), Is.EqualTo(expected));

    [Test]
    public void BucketMatchesHuggingFaceOverTheFixtureTable()
    {
        using var file = SafeTensorFile.Open(Path.Combine(T5Fixture.Root, "buckets.safetensors"));
        long[] Longs(string name)
        {
            var values = new long[file.GetInfo(name).ElementCount];
            file.ReadInt64(name, values);
            return values;
        }
        long[] relative = Longs("relative_position");
        int settings = 0;
        foreach (var (buckets, distance) in new[] { (32, 128), (8, 16), (16, 32) })
        {
            foreach (bool bidirectional in new[] { true, false })
            {
                long[] expected = Longs($"{(bidirectional ? "bidirectional" : "causal")}_{buckets}_{distance}");
                for (int i = 0; i < relative.Length; i++)
                    Assert.That(T5RelativeBuckets.Bucket((int)relative[i], bidirectional, buckets, distance), Is.EqualTo(expected[i]),
                        $"relative position {relative[i]}, {buckets} buckets, max distance {distance}, bidirectional {bidirectional}");
                settings++;
            }
        }
        Assert.That(settings, Is.EqualTo(6));
    }

    [TestCase(3, 5, true)]
    [TestCase(6, 6, false)]
    [TestCase(1, 1, true)]
    public void BiasPlanesLookUpTheBucketOfEveryPair(int tq, int tk, bool bidirectional)
    {
        const int heads = 3, buckets = 8, distance = 16;
        double[] table = Random(buckets * heads, 41);
        var bias = new double[heads * tq * tk];
        RelativePositionOps.Bias<double>(bias, table, heads, tq, tk, bidirectional, buckets, distance);
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < tq; i++)
                for (int j = 0; j < tk; j++)
                    Assert.That(bias[(h * tq + i) * tk + j], Is.EqualTo(table[T5RelativeBuckets.Bucket(j - i, bidirectional, buckets, distance) * heads + h]));
    }
}

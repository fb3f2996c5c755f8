using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>
/// kernels/selftest.cu against C# expectations, on the emulator and (Category "Gpu") on a real GPU: the emulator's
/// semantics (barriers, warp exchanges, atomics, shared memory, bf16/fp16 rounding) are checked by the same
/// expectations that the hardware meets.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class SelftestKernelTests(DeviceKind kind)
{
    private IComputeDevice device = null!;

    [OneTimeSetUp]
    public void OpenDevice() => device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void CloseDevice() => (device as IDisposable)?.Dispose();

    // Quarter-integers: every sum below is exact in fp32, whatever the order of additions.
    private static float[] Quarters(int n, int seed, int range = 40)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = rng.Next(-range, range) / 4f;
        return x;
    }

    [TestCase(1)]
    [TestCase(255)]
    [TestCase(256)]
    [TestCase(257)]
    [TestCase(1000)]
    [TestCase(70_001)]
    public void BlockSumAddsEachBlocksElements(int n)
    {
        float[] x = Quarters(n, n);
        int blocks = SelftestBlockSum.Blocks(n);
        using var input = device.Upload(x);
        using var sums = device.Allocate<float>(blocks);
        SelftestBlockSum.Launch(device, input.Span, sums.Span);

        var expected = new float[blocks];
        for (int i = 0; i < n; i++) expected[i / SelftestBlockSum.Threads] += x[i];
        Assert.That(sums.Download(), Is.EqualTo(expected));
    }

    [Test]
    public void WarpPrimitivesExchangeAcrossTheLanesOfEachWarp()
    {
        const int n = 2 * SelftestWarpOps.Threads;
        float[] x = Quarters(n, 7);
        x[40] = 150f;   // warp 1: any(x > 100)
        x[100] = -150f; // warp 3: not all(x > -100)
        using var input = device.Upload(x);
        using var output = device.Allocate<float>(8 * n);
        using var votes = device.Allocate<uint>(4 * (n / 32));
        SelftestWarpOps.Launch(device, input.Span, output.Span, votes.Span);
        float[] o = output.Download();
        uint[] v = votes.Download();

        for (int w = 0; w < n / 32; w++)
        {
            var lanes = x.AsSpan(32 * w, 32).ToArray();
            float sum = 0, max = float.NegativeInfinity, min = float.PositiveInfinity;
            uint positive = 0;
            foreach (float value in lanes) { sum += value; max = Math.Max(max, value); min = Math.Min(min, value); }
            for (int l = 0; l < 32; l++) if (lanes[l] > 0) positive |= 1u << l;
            for (int l = 0; l < 32; l++)
            {
                int i = 32 * w + l;
                float[] expected =
                [
                    sum, max, min,
                    l < 31 ? lanes[l + 1] : lanes[l],
                    l >= 3 ? lanes[l - 3] : lanes[l],
                    lanes[7],
                    lanes[l ^ 5],
                    (l % 8) + 2 < 8 ? lanes[l + 2] : lanes[l],
                ];
                Assert.That(o.AsSpan(8 * i, 8).ToArray(), Is.EqualTo(expected), $"warp {w} lane {l}");
            }
            uint[] expectedVotes = [positive, lanes.Any(value => value > 100) ? 1u : 0u, lanes.All(value => value > -100) ? 1u : 0u, 0xAAAAAAAAu];
            Assert.That(v.AsSpan(4 * w, 4).ToArray(), Is.EqualTo(expectedVotes), $"votes of warp {w}");
        }
    }

    [TestCase(1, 1)]
    [TestCase(10_007, 37)]
    [TestCase(5000, 256)]
    public void HistogramCountsEveryValueOnce(int n, int bins)
    {
        var rng = new Random(n);
        int[] values = new int[n];
        for (int i = 0; i < n; i++) values[i] = rng.Next(bins);
        using var input = device.Upload(values);
        using var counts = device.Allocate<int>(bins);
        device.Zero(counts.Span);
        SelftestHistogram.Launch(device, input.Span, counts.Span);

        var expected = new int[bins];
        foreach (int value in values) expected[value]++;
        Assert.That(counts.Download(), Is.EqualTo(expected));
    }

    [TestCase(1)]
    [TestCase(1000)]
    [TestCase(4099)]
    public void AtomicsMaxAddCasAndFloatMax(int n)
    {
        var rng = new Random(n);
        int[] values = new int[n];
        for (int i = 0; i < n; i++) values[i] = rng.Next(-500, 501);
        using var input = device.Upload(values);
        using var result = device.Upload([int.MinValue, BitConverter.SingleToInt32Bits(0f), 0, BitConverter.SingleToInt32Bits(float.NegativeInfinity)]);
        SelftestAtomics.Launch(device, input.Span, result.Span);
        int[] r = result.Download();

        Assert.That(r[0], Is.EqualTo(values.Max()));
        Assert.That(BitConverter.Int32BitsToSingle(r[1]), Is.EqualTo((float)values.Sum()));
        Assert.That(r[2], Is.EqualTo(n));
        Assert.That(BitConverter.Int32BitsToSingle(r[3]), Is.EqualTo(0.5f * values.Max()));
    }

    [TestCase(1)]
    [TestCase(256)]
    [TestCase(300)]
    [TestCase(1000)]
    public void ReverseThroughSharedMemoryNeedsTheBarrier(int n)
    {
        float[] x = Quarters(n, n + 1, 10_000);
        using var input = device.Upload(x);
        using var output = device.Allocate<float>(n);
        SelftestReverse.Launch(device, input.Span, output.Span);

        var expected = new float[n];
        for (int b = 0; b < n; b += SelftestReverse.Threads)
        {
            int length = Math.Min(SelftestReverse.Threads, n - b);
            for (int t = 0; t < length; t++) expected[b + length - 1 - t] = x[b + t];
        }
        Assert.That(output.Download(), Is.EqualTo(expected));
    }

    [TestCase(1000, 128)]
    [TestCase(1, 32)]
    [TestCase(2049, 1024)]
    [TestCase(100, 96)]
    [TestCase(77, 7)]
    public void ScanInDynamicSharedMemory(int n, int threads)
    {
        float[] x = Quarters(n, n * 3);
        using var input = device.Upload(x);
        using var output = device.Allocate<float>(n);
        SelftestScan.Launch(device, input.Span, output.Span, threads);

        var expected = new float[n];
        for (int i = 0; i < n; i++) expected[i] = x[i] + (i % threads == 0 ? 0 : expected[i - 1]);
        Assert.That(output.Download(), Is.EqualTo(expected));
    }

    [Test]
    public void Bf16AndFp16RoundToNearestEvenLikeTheHardware()
    {
        var inputs = new List<float>
        {
            0f, -0f, 1f, -1f, 1.00390625f /* bf16 tie → even */, 1.01171875f /* bf16 tie → odd up */, 1.0009765625f,
            3.14159265f, -2.71828183f, 65504f, 65519f, 65520f, 1e5f, -1e5f, 6.1035156e-05f /* fp16 min normal */,
            5.9604645e-08f /* fp16 min subnormal */, 2.9802322e-08f /* half of it: tie → 0 */, 3.0e-08f, 1e-10f,
            1e-40f /* fp32 subnormal */, float.MaxValue, -float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
            float.NaN, 3.3895314e38f /* bf16 max */, 3.3961776e38f /* rounds to bf16 inf */, 0.1f, 0.2f, 0.3f, 1e-3f, 12345.678f,
        };
        var rng = new Random(5);
        while (inputs.Count < 256) inputs.Add((float)(rng.NextDouble() * 40 - 20));
        while (inputs.Count % 4 != 0) inputs.Add(0.5f);
        float[] x = [.. inputs];
        int n = x.Length;

        using var input = device.Upload(x);
        using var bf16 = device.Allocate<ushort>(n);
        using var fp16 = device.Allocate<ushort>(n);
        using var back = device.Allocate<float>(2 * n);
        using var math = device.Allocate<float>(6 * n);
        SelftestConvert.Launch(device, input.Span, bf16.Span, fp16.Span, back.Span, math.Span);
        ushort[] b = bf16.Download(), h = fp16.Download();
        float[] r = back.Download(), m = math.Download();

        for (int i = 0; i < n; i++)
        {
            float v = x[i];
            ushort expectedBf16 = Bf16Bits(v);
            ushort expectedFp16 = float.IsNaN(v) ? (ushort)0x7fff : BitConverter.HalfToUInt16Bits((Half)v);
            Assert.That(b[i], Is.EqualTo(expectedBf16), $"bf16 of {v:R} (0x{BitConverter.SingleToUInt32Bits(v):x8})");
            Assert.That(h[i], Is.EqualTo(expectedFp16), $"fp16 of {v:R} (0x{BitConverter.SingleToUInt32Bits(v):x8})");
            Assert.That(BitConverter.SingleToUInt32Bits(r[2 * i]), Is.EqualTo((uint)expectedBf16 << 16), $"bf16 → float of {v:R}");
            // fp16 NaN → the canonical fp32 NaN 0x7fffffff (what an H100 does; .NET would keep the payload).
            uint fromHalf = float.IsNaN(v) ? 0x7fffffffu : BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(expectedFp16));
            Assert.That(BitConverter.SingleToUInt32Bits(r[2 * i + 1]), Is.EqualTo(fromHalf), $"fp16 → float of {v:R}");

            if (!float.IsFinite(v) || Math.Abs(v) > 20) continue;
            double[] exact = [Math.Exp(v), Math.Tanh(v), 1 / Math.Sqrt(Math.Abs(v) + 1), Math.Exp(v), Math.Max(v, 0), v / 3.0];
            double[] relative = [2e-6, 2e-6, 2e-6, 2e-5 * (1 + Math.Abs(v)), 0, 1e-6];
            for (int f = 0; f < 6; f++)
                Assert.That(m[6 * i + f], Is.EqualTo(exact[f]).Within(relative[f] * Math.Abs(exact[f]) + 1e-30), $"math function {f} of {v:R}");
        }
    }

    /// <summary>fp32 → bf16 bits, round to nearest even; NaN → 0x7fff (the GPU's canonical NaN).</summary>
    internal static ushort Bf16Bits(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffff) > 0x7f800000) return 0x7fff;
        return (ushort)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }
}

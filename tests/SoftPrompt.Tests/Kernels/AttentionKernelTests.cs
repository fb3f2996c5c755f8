using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// GPT-2's attention — causal, scale 1/√hs, q/k/v and dq/dk/dv the column slices of one fused [B·T, 3C] buffer — run
/// through kernels/attention.cu (<see cref="FusedQkvAttention"/> → <see cref="AttentionForward"/> /
/// <see cref="AttentionBackward"/>, as CudaGpt2Engine runs it) against <see cref="AttentionOps"/> (the CPU reference), on
/// the emulator and (Category "Gpu") on a real GPU: forward (out, lse) and backward (dq, dk, dv) over sequence lengths
/// that are and are not multiples of the tiles (1, 2, 17, 65, 130, …), every padded head size (hs 1 … 128, vector and
/// scalar paths), several B·H. Timing: benchmarks/SoftPrompt.Benchmarks/AttentionKernelBenchmarks.cs.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class AttentionKernelTests(DeviceKind kind)
{
    private IComputeDevice device = null!;

    [OneTimeSetUp]
    public void OpenDevice() => device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void CloseDevice() => device?.Dispose();

    // (B, T, C, H): hs = C / H. Head sizes cover each kernel variant (padded 16 / 32 / 64 / 128), the float4 path
    // (hs and C multiples of 4) and the scalar one; T covers 1, 2, non-multiples of the 32/64-row tiles and exact ones.
    private static readonly object[] Shapes =
    [
        new object[] { 1, 1, 8, 1 },      // hs 8,   T = 1
        new object[] { 2, 2, 16, 2 },     // hs 8,   T = 2, B·H = 4
        new object[] { 2, 17, 48, 3 },    // hs 16,  B·H = 6
        new object[] { 2, 130, 24, 3 },   // hs 8,   three query tiles, the last one partial
        new object[] { 1, 40, 3, 3 },     // hs 1   (scalar path)
        new object[] { 3, 33, 42, 2 },    // hs 21  (padded to 32, scalar path), B·H = 6
        new object[] { 2, 130, 96, 3 },   // hs 32,  B·H = 6
        new object[] { 1, 65, 33, 1 },    // hs 33  (padded to 64, scalar path)
        new object[] { 1, 64, 128, 2 },   // hs 64,  T = one whole tile
        new object[] { 1, 130, 128, 2 },  // hs 64
        new object[] { 1, 1, 128, 1 },    // hs 128, T = 1
        new object[] { 1, 70, 200, 2 },   // hs 100 (padded to 128)
        new object[] { 1, 97, 256, 2 },   // hs 128
        new object[] { 2, 300, 256, 4 },  // hs 64,  B·H = 8, five query tiles
    ];

    private sealed record Case(int B, int T, int C, int H, float[] Qkv, float[] Out, float[] Lse, float[] Dout, float[] Dqkv)
    {
        public int Hs => C / H;
        public override string ToString() => $"B={B} T={T} C={C} H={H} hs={Hs}";
    }

    // Random qkv (q a little larger, so some rows are peaked), dout, and the CPU reference of both passes.
    private static Case Make(int batch, int sequence, int channels, int heads, float qScale = 2f)
    {
        var rng = new Random(((batch * 1009 + sequence) * 1009 + channels) * 1009 + heads);  // not HashCode: its seed changes per process
        int c3 = 3 * channels;
        var qkv = new float[batch * sequence * c3];
        for (int i = 0; i < qkv.Length; i++) qkv[i] = (float)(rng.NextDouble() * 4 - 2) * (i % c3 < channels ? qScale : 1f);
        var dout = new float[batch * sequence * channels];
        for (int i = 0; i < dout.Length; i++) dout[i] = (float)(rng.NextDouble() * 2 - 1);
        var output = new float[batch * sequence * channels];
        var lse = new float[batch * heads * sequence];
        AttentionOps.Forward<float>(output, lse, qkv, batch, sequence, channels, heads);
        var dqkv = new float[qkv.Length];
        AttentionOps.Backward<float>(dqkv, dout, qkv, output, lse, batch, sequence, channels, heads);
        return new Case(batch, sequence, channels, heads, qkv, output, lse, dout, dqkv);
    }

    private static float[] Filled(int n, float value)
    {
        var a = new float[n];
        Array.Fill(a, value);
        return a;
    }

    // |actual − expected| ≤ 2e-5 · max(max|expected|, 1) + 1e-4 · |expected| element-wise (fp32, other summation
    // orders). The inputs are O(1), so the floor of 1 covers exact cancellations: at T = 1 the CPU's dq and dk are 0
    // (dout·v − dout·out), the kernels' are the rounding of that difference.
    private static void AssertClose(float[] actual, float[] expected, string what, double looseness = 1)
    {
        double maxAbs = 0, maxErr = 0;
        foreach (float e in expected) maxAbs = Math.Max(maxAbs, Math.Abs(e));
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            double tolerance = looseness * (2e-5 * Math.Max(maxAbs, 1) + 1e-4 * Math.Abs(expected[i]));
            if (!(err <= tolerance))  // NaN fails too
                Assert.Fail($"{what}[{i}] = {actual[i]:R}, expected {expected[i]:R} (error {err:E2}, tolerance {tolerance:E2}, max |x| {maxAbs:G4})");
            maxErr = Math.Max(maxErr, err);
        }
        TestContext.Out.WriteLine($"{what}: max error {maxErr:E2}, relative to max |x| = {maxAbs:G4}: {(maxAbs > 0 ? maxErr / maxAbs : 0):E2}");
    }

    // The q, k or v section of dqkv: columns [part·C, part·C + C) of every row.
    private static void AssertSection(float[] actual, Case c, int part, string what, double looseness = 1)
    {
        int c3 = 3 * c.C;
        double maxAbs = 0;
        for (int r = 0; r < c.B * c.T; r++)
            for (int j = 0; j < c.C; j++) maxAbs = Math.Max(maxAbs, Math.Abs(c.Dqkv[r * c3 + part * c.C + j]));
        double maxErr = 0;
        for (int r = 0; r < c.B * c.T; r++)
            for (int j = 0; j < c.C; j++)
            {
                int i = r * c3 + part * c.C + j;
                double err = Math.Abs((double)actual[i] - c.Dqkv[i]);
                double tolerance = looseness * (2e-5 * Math.Max(maxAbs, 1) + 1e-4 * Math.Abs(c.Dqkv[i]));
                if (!(err <= tolerance))
                    Assert.Fail($"{what} at row {r} (b {r / c.T}, t {r % c.T}), column {j} (head {j / c.Hs}) = {actual[i]:R}, expected {c.Dqkv[i]:R} " +
                                $"(error {err:E2}, tolerance {tolerance:E2}; {c})");
                maxErr = Math.Max(maxErr, err);
            }
        TestContext.Out.WriteLine($"{what}: max error {maxErr:E2}, relative to max |x| = {maxAbs:G4}: {(maxAbs > 0 ? maxErr / maxAbs : 0):E2}");
    }

    private float[] RunBackward(Case c, DeviceBuffer<float> qkv, DeviceBuffer<float> output, DeviceBuffer<float> lse, DeviceBuffer<float> dout)
    {
        using var dqkv = device.Upload(Filled(c.Qkv.Length, float.NaN));  // every element must be overwritten
        using var scratch = device.Upload(Filled(c.B * c.H * c.T, float.NaN));
        FusedQkvAttention.Backward(device, dqkv.Span, dout.Span, qkv.Span, output.Span, lse.Span, scratch.Span, c.B, c.T, c.C, c.H);
        return dqkv.Download();
    }

    [TestCaseSource(nameof(Shapes))]
    public void ForwardMatchesTheCpuReference(int batch, int sequence, int channels, int heads)
    {
        var c = Make(batch, sequence, channels, heads);
        using var qkv = device.Upload(c.Qkv);
        using var output = device.Upload(Filled(c.Out.Length, float.NaN));
        using var lse = device.Upload(Filled(c.Lse.Length, float.NaN));
        FusedQkvAttention.Forward(device, output.Span, lse.Span, qkv.Span, batch, sequence, channels, heads);
        AssertClose(output.Download(), c.Out, $"out ({c})");
        AssertClose(lse.Download(), c.Lse, $"lse ({c})");
    }

    [Category("Slow")]
    [TestCaseSource(nameof(Shapes))]
    public void BackwardMatchesTheCpuReferenceAndWritesEveryElement(int batch, int sequence, int channels, int heads)
    {
        var c = Make(batch, sequence, channels, heads);
        using var qkv = device.Upload(c.Qkv);
        using var output = device.Upload(c.Out);
        using var lse = device.Upload(c.Lse);
        using var dout = device.Upload(c.Dout);
        float[] dqkv = RunBackward(c, qkv, output, lse, dout);
        AssertSection(dqkv, c, 0, "dq");
        AssertSection(dqkv, c, 1, "dk");
        AssertSection(dqkv, c, 2, "dv");
    }

    [TestCase(2, 130, 128, 2)]  // hs 64
    [TestCase(1, 97, 256, 2)]   // hs 128
    [TestCase(2, 65, 48, 3)]    // hs 16
    public void BackwardIsBitReproducible(int batch, int sequence, int channels, int heads)
    {
        var c = Make(batch, sequence, channels, heads);
        using var qkv = device.Upload(c.Qkv);
        using var output = device.Upload(c.Out);
        using var lse = device.Upload(c.Lse);
        using var dout = device.Upload(c.Dout);
        float[] first = RunBackward(c, qkv, output, lse, dout);
        float[] second = RunBackward(c, qkv, output, lse, dout);
        for (int i = 0; i < first.Length; i++)
            if (BitConverter.SingleToInt32Bits(first[i]) != BitConverter.SingleToInt32Bits(second[i]))
                Assert.Fail($"dqkv[{i}] differs between two runs: {first[i]:R} vs {second[i]:R} ({c})");
    }

    [Test]
    public void ForwardThenBackwardOnTheKernelsOwnOutputs()
    {
        var c = Make(2, 100, 128, 2);  // hs 64
        using var qkv = device.Upload(c.Qkv);
        using var output = device.Allocate<float>(c.Out.Length);
        using var lse = device.Allocate<float>(c.Lse.Length);
        using var dout = device.Upload(c.Dout);
        FusedQkvAttention.Forward(device, output.Span, lse.Span, qkv.Span, c.B, c.T, c.C, c.H);
        float[] dqkv = RunBackward(c, qkv, output, lse, dout);
        AssertSection(dqkv, c, 0, "dq");
        AssertSection(dqkv, c, 1, "dk");
        AssertSection(dqkv, c, 2, "dv");
    }

    // Scores up to about ±40: the online softmax rescales often and most probabilities underflow to 0. Rounding
    // s·scale ≈ 40 in fp32 moves exp(s·scale − lse) by ~4e-6 relative (both implementations), hence 2.5× the tolerance.
    private const double Peaked = 2.5;

    [TestCase(1, 130, 128, 2)]  // hs 64
    [TestCase(1, 90, 16, 2)]    // hs 8
    public void PeakedScoresMatchTheCpuReference(int batch, int sequence, int channels, int heads)
    {
        var c = Make(batch, sequence, channels, heads, qScale: 8f);
        using var qkv = device.Upload(c.Qkv);
        using var output = device.Allocate<float>(c.Out.Length);
        using var lse = device.Allocate<float>(c.Lse.Length);
        using var dout = device.Upload(c.Dout);
        FusedQkvAttention.Forward(device, output.Span, lse.Span, qkv.Span, c.B, c.T, c.C, c.H);
        AssertClose(output.Download(), c.Out, $"out ({c})", Peaked);
        AssertClose(lse.Download(), c.Lse, $"lse ({c})", Peaked);
        using var cpuOut = device.Upload(c.Out);
        using var cpuLse = device.Upload(c.Lse);
        float[] dqkv = RunBackward(c, qkv, cpuOut, cpuLse, dout);
        AssertSection(dqkv, c, 0, "dq", Peaked);
        AssertSection(dqkv, c, 1, "dk", Peaked);
        AssertSection(dqkv, c, 2, "dv", Peaked);
    }

    // Spans that are slices of larger buffers, starting 1 float past a 16-byte boundary (the kernels fall back to
    // scalar loads and stores), with sentinels after every span: results match and nothing past the spans is touched.
    [TestCase(1, 70, 128, 2)]  // hs 64: would take the float4 path if aligned
    [TestCase(2, 19, 32, 2)]   // hs 16
    public void MisalignedSlicesOfLargerBuffersUseTheScalarPath(int batch, int sequence, int channels, int heads)
    {
        var c = Make(batch, sequence, channels, heads);
        const int offset = 1, tail = 37;
        const float sentinel = 12345.5f;
        DeviceBuffer<float> Padded(float[] data)
        {
            var padded = Filled(offset + data.Length + tail, sentinel);
            data.CopyTo(padded, offset);
            return device.Upload(padded);
        }
        using var qkv = Padded(c.Qkv);
        using var output = Padded(Filled(c.Out.Length, float.NaN));
        using var lse = Padded(Filled(c.Lse.Length, float.NaN));
        using var dout = Padded(c.Dout);
        using var dqkv = Padded(Filled(c.Qkv.Length, float.NaN));
        using var scratch = Padded(Filled(c.Lse.Length, float.NaN));
        DeviceSpan<float> Span(DeviceBuffer<float> b) => b.Slice(offset, b.Length - offset);  // longer than needed

        FusedQkvAttention.Forward(device, Span(output), Span(lse), Span(qkv), c.B, c.T, c.C, c.H);
        FusedQkvAttention.Backward(device, Span(dqkv), Span(dout), Span(qkv), Span(output), Span(lse), Span(scratch), c.B, c.T, c.C, c.H);

        float[] o = output.Download(), l = lse.Download(), d = dqkv.Download();
        AssertClose(o[offset..(offset + c.Out.Length)], c.Out, $"out ({c})");
        AssertClose(l[offset..(offset + c.Lse.Length)], c.Lse, $"lse ({c})");
        AssertSection(d[offset..(offset + c.Qkv.Length)], c, 0, "dq");
        AssertSection(d[offset..(offset + c.Qkv.Length)], c, 1, "dk");
        AssertSection(d[offset..(offset + c.Qkv.Length)], c, 2, "dv");
        foreach (var (name, data, length) in new[] { ("out", o, c.Out.Length), ("lse", l, c.Lse.Length), ("dqkv", d, c.Qkv.Length) })
        {
            Assert.That(data[0], Is.EqualTo(sentinel), $"{name}: the element before the span was written");
            Assert.That(data[(offset + length)..], Is.All.EqualTo(sentinel), $"{name}: elements past the span were written");
        }
    }

    // The longest sequence the engine plans for, 16 query tiles: one head, checked against the CPU.
    [Category("Slow")]
    [Test]
    public void LongSequenceMatchesTheCpuReference()
    {
        var c = Make(1, 1024, 64, 1);  // hs 64
        using var qkv = device.Upload(c.Qkv);
        using var output = device.Allocate<float>(c.Out.Length);
        using var lse = device.Allocate<float>(c.Lse.Length);
        using var dout = device.Upload(c.Dout);
        FusedQkvAttention.Forward(device, output.Span, lse.Span, qkv.Span, c.B, c.T, c.C, c.H);
        AssertClose(output.Download(), c.Out, $"out ({c})");
        AssertClose(lse.Download(), c.Lse, $"lse ({c})");
        using var cpuOut = device.Upload(c.Out);
        using var cpuLse = device.Upload(c.Lse);
        float[] dqkv = RunBackward(c, qkv, cpuOut, cpuLse, dout);
        AssertSection(dqkv, c, 0, "dq");
        AssertSection(dqkv, c, 1, "dk");
        AssertSection(dqkv, c, 2, "dv");
    }

    [Test]
    public void LaunchersRejectShapesTheKernelsCannotRun()
    {
        using var big = device.Allocate<float>(3 * 2 * 4 * 264);
        var s = big.Span;
        Assert.That(() => FusedQkvAttention.Forward(device, s, s, s, 1, 4, 264, 2), Throws.ArgumentException.With.Message.Contains("head size 132"));
        Assert.That(() => FusedQkvAttention.Forward(device, s, s, s, 1, 4, 30, 4), Throws.ArgumentException.With.Message.Contains("multiple of 4 heads"));
        Assert.That(() => FusedQkvAttention.Forward(device, s, s.Slice(0, 7), s, 1, 4, 16, 2), Throws.ArgumentException.With.Message.Contains("lse"));
        Assert.That(() => FusedQkvAttention.Backward(device, s.Slice(0, 100), s, s, s, s, s, 1, 4, 16, 2), Throws.ArgumentException.With.Message.Contains("dqkv"));
        Assert.That(() => FusedQkvAttention.Backward(device, s, s, s, s, s, s.Slice(0, 7), 1, 4, 16, 2), Throws.ArgumentException.With.Message.Contains("scratch"));
        Assert.That(() => FusedQkvAttention.Backward(device, s.Slice(0, 48), s.Slice(100), s.Slice(0, 48), s.Slice(200), s.Slice(300), s.Slice(400), 1, 1, 16, 2),
            Throws.ArgumentException.With.Message.Contains("must not alias"), "dqkv = qkv");
        Assert.DoesNotThrow(() => FusedQkvAttention.Forward(device, s, s, s, 0, 4, 16, 2), "an empty batch launches nothing");
        Assert.DoesNotThrow(() => FusedQkvAttention.Forward(device, s, s, s, 2, 0, 16, 2), "an empty sequence launches nothing");
    }
}

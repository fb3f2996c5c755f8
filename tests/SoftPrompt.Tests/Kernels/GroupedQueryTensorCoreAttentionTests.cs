using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// kernels/attention_tc.cu with grouped-query heads read in place (Hkv &lt; H: k, v, dk, dv hold Hkv heads; query head h
/// reads kv head h / (H / Hkv), and the dkv kernel sums each kv head's gradient over its group) against a float64 CPU
/// reference that repeats k and v per query head (<see cref="GroupedQueryOps.Repeat{T}"/>), runs
/// <see cref="BiasedAttentionOps"/> and sums the group's gradients back (<see cref="GroupedQueryOps.Sum{T}"/>). GQA and MQA
/// groupings at both head sizes; q, k, v and out bf16 in memory (the launchers' bf16-storage overloads), dout exactly
/// bf16, so what remains is the kernels' rounding of P, dS and out. Outputs start as NaN (every element must be written).
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class GroupedQueryTensorCoreAttentionTests(DeviceKind kind) : KernelTestBase(kind)
{
    // As T5KernelAttentionTests.Bf16Tolerance: 4 bf16 units of max(max |expected|, 1); lse is fp32 throughout.
    private static double Tolerance(string what) => what == "lse" ? 2e-5 + 1e-4 : 4.0 / 512;

    private static float RoundToBf16(float x) => GemmReference.FromBf16(GemmReference.ToBf16(x));

    //  B   T  H  Hkv  hs  key lengths
    [TestCase(2, 70, 4, 2, 64, false)]   // GQA, group 2; a partial second query/key tile
    [TestCase(1, 130, 4, 1, 128, false)] // MQA, 3 blocks, 5 key tiles per head
    [TestCase(2, 33, 6, 3, 64, true)]    // GQA, 3 kv heads, causal and key lengths together
    [TestCase(3, 20, 8, 2, 128, false)]  // group 4
    public void GroupsReadInPlaceMatchTheRepeatedCpuReference(int batch, int sequence, int heads, int keyValueHeads, int headSize, bool keyLengths)
    {
        int a = heads * headSize, kv = keyValueHeads * headSize, rows = batch * sequence;
        float[] Random(int n, int seed) => [.. RandomFloats(n, seed).Select(RoundToBf16)];
        float[] q = Random(rows * a, 1), k = Random(rows * kv, 2), v = Random(rows * kv, 3), dout = Random(rows * a, 4);
        int[] lengths = keyLengths ? [.. Enumerable.Range(0, batch).Select(b => b == 0 ? sequence : 1 + (sequence - 1) / (b + 1))] : [];
        var expected = Reference(q, k, v, dout, lengths, batch, sequence, heads, keyValueHeads, headSize, null);

        static ushort[] Bf16(float[] x) => [.. x.Select(GemmReference.ToBf16)];
        using var dq = Put(Bf16(q)); using var dk = Put(Bf16(k)); using var dv = Put(Bf16(v)); using var ddout = Put(dout);
        using var dlengths = Put(keyLengths ? lengths : new[] { 0 });
        var lengthSpan = keyLengths ? dlengths.Span : default;
        using var output = Put(Bf16(Filled(rows * a))); using var lse = Put(Filled(rows * heads)); using var scratch = Put(Filled(rows * heads));
        AttentionForward.Launch(Device, output.Span, a, lse.Span, dq.Span, a, dk.Span, kv, dv.Span, kv, default, default, lengthSpan,
            batch, sequence, sequence, heads, headSize, causal: true, scale: 1f, keyValueHeads: keyValueHeads);
        float[] kernelOut = [.. output.Read().Select(GemmReference.FromBf16)];
        AssertNear(kernelOut, expected.Out, "out");
        AssertNear(lse.Read(), expected.Lse, "lse");
        // The backward reads the kernel's bf16 out (D = rowsum(dout ∘ out)): the reference gets the same out.
        expected = Reference(q, k, v, dout, lengths, batch, sequence, heads, keyValueHeads, headSize, kernelOut);

        float[] Backward(out float[] gq, out float[] gk)
        {
            using var gradQ = Put(Filled(rows * a)); using var gradK = Put(Filled(rows * kv)); using var gradV = Put(Filled(rows * kv));
            AttentionBackward.Launch(Device, gradQ.Span, a, gradK.Span, kv, gradV.Span, kv, ddout.Span, a, dq.Span, a, dk.Span, kv, dv.Span, kv,
                output.Span, a, lse.Span, scratch.Span, default, default, lengthSpan, batch, sequence, sequence, heads, headSize, causal: true, scale: 1f,
                keyValueHeads: keyValueHeads);
            (gq, gk) = (gradQ.Read(), gradK.Read());
            return gradV.Read();
        }
        var gv = Backward(out var gq, out var gk);
        AssertNear(gq, expected.Dq, "dq");
        AssertNear(gk, expected.Dk, "dk");
        AssertNear(gv, expected.Dv, "dv");

        // The group's sum runs in a fixed order inside one block: a second run gives the same bits.
        var gv2 = Backward(out var gq2, out var gk2);
        Assert.That(gk2, Is.EqualTo(gk), "dk again");
        Assert.That(gv2, Is.EqualTo(gv), "dv again");
        Assert.That(gq2, Is.EqualTo(gq), "dq again");
    }

    [Test]
    public void GroupsAreRefusedWhereTheTensorCoreKernelsDoNotRun()
    {
        using var x = Put(new float[2 * 8 * 4 * 64]);
        using var x16 = Put(new ushort[2 * 8 * 4 * 64]);
        using var lse = Put(new float[2 * 8 * 4]);
        Assert.That(() => AttentionForward.Launch(Device, x16.Span, 128, lse.Span, x16.Span, 128, x16.Span, 64, x16.Span, 64, default, default, default,
            2, 8, 8, 4, 32, causal: true, scale: 1f, keyValueHeads: 2),
            Throws.ArgumentException.With.Message.Contains("only by the tensor-core kernels").And.Message.Contains("head size is 32"), "bf16 at head size 32: the SIMT kernels");
        Assert.That(() => AttentionForward.Launch(Device, x.Span, 256, lse.Span, x.Span, 256, x.Span, 128, x.Span, 128, default, default, default,
            1, 8, 8, 4, 64, causal: true, scale: 1f, keyValueHeads: 2),
            Throws.ArgumentException.With.Message.Contains("only by the tensor-core kernels").And.Message.Contains("are fp32"), "fp32 spans: the SIMT kernels");
        Assert.That(() => AttentionForward.Launch(Device, x16.Span, 256, lse.Span, x16.Span, 256, x16.Span, 192, x16.Span, 192, default, default, default,
            1, 8, 8, 4, 64, causal: true, scale: 1f, keyValueHeads: 3),
            Throws.ArgumentException.With.Message.Contains("not a multiple"), "4 heads over 3 groups");
    }

    private static float[] Filled(int n)
    {
        var x = new float[n];
        Array.Fill(x, float.NaN);
        return x;
    }

    private static (float[] Out, float[] Lse, float[] Dq, float[] Dk, float[] Dv) Reference(float[] q, float[] k, float[] v, float[] dout, int[] lengths,
        int batch, int sequence, int heads, int keyValueHeads, int headSize, float[]? kernelOut)
    {
        int rows = batch * sequence, a = heads * headSize, kv = keyValueHeads * headSize;
        double[] Wide(float[] narrow)
        {
            var wide = new double[rows * a];
            GroupedQueryOps.Repeat<double>(wide, [.. narrow.Select(x => (double)x)], rows, heads, keyValueHeads, headSize);
            return wide;
        }
        double[] q64 = [.. q.Select(x => (double)x)], dout64 = [.. dout.Select(x => (double)x)], k64 = Wide(k), v64 = Wide(v);
        var output = new double[rows * a];
        var lse = new double[rows * heads];
        BiasedAttentionOps.Forward<double>(output, lse, q64, k64, v64, [], lengths, batch, sequence, sequence, heads, headSize, causal: true, 1.0);
        double[] dq = new double[rows * a], dkWide = new double[rows * a], dvWide = new double[rows * a], dk = new double[rows * kv], dv = new double[rows * kv];
        double[] saved = kernelOut is null ? output : [.. kernelOut.Select(x => (double)x)];
        BiasedAttentionOps.Backward<double>(dq, dkWide, dvWide, dout64, q64, k64, v64, saved, lse, [], lengths, batch, sequence, sequence, heads, headSize,
            causal: true, 1.0);
        GroupedQueryOps.Sum<double>(dk, dkWide, rows, heads, keyValueHeads, headSize);
        GroupedQueryOps.Sum<double>(dv, dvWide, rows, heads, keyValueHeads, headSize);
        static float[] F(double[] x) => [.. x.Select(e => (float)e)];
        return (F(output), F(lse), F(dq), F(dk), F(dv));
    }

    private static void AssertNear(float[] actual, float[] expected, string what)
    {
        double maxAbs = Math.Max(1, expected.Max(Math.Abs)), tolerance = Tolerance(what) * maxAbs, maxErr = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            if (!(err <= tolerance)) Assert.Fail($"{what}[{i}] = {actual[i]:R}, expected {expected[i]:R} (error {err:E2}, tolerance {tolerance:E2})");
            maxErr = Math.Max(maxErr, err);
        }
        TestContext.Out.WriteLine($"{what}: max error {maxErr:E2} of max |x| {maxAbs:G4}");
    }
}

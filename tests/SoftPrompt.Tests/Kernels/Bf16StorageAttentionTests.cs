using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The attention launchers' bf16-in-memory overloads (bf16 precision): q, k, v and the forward's out are bf16 in memory,
/// lse, dout and dq, dk, dv fp32. Tensor cores (attention_tc_*_bf16) at hs 64 and 128, the SIMT kernels reading bf16
/// (attention_*_bf16) at other head sizes. Checked two ways: against a float64 <see cref="BiasedAttentionOps"/> fed the
/// bf16 values (grouped-query heads repeated and summed back with <see cref="GroupedQueryOps"/>), and, at the SIMT head
/// sizes, bit for bit against the fp32-in-memory SIMT kernels on the same bf16-exact values (the same arithmetic: out
/// must be their fp32 out rounded to nearest even, lse and the gradients identical). The tensor-core kernels exist for
/// bf16 storage only, so at hs 64 / 128 the CPU reference is the check. Causal (GPT-2 / Llama), T5 bias (encoder, decoder), cross-attention
/// (Tq ≠ Tk), key lengths (k, v past them are NaN: never read), grouped-query heads, packed / separate / padded
/// (scalar path) layouts. Outputs start as NaN, the columns between strided outputs as a sentinel (never written).
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16StorageAttentionTests(DeviceKind kind) : KernelTestBase(kind)
{
    public enum Kind { Causal, Encoder, Decoder, Cross }

    /// <summary>Packed: one [rows, A + 2·KV] qkv buffer (cross: q alone and one [rows, 2·KV] kv buffer) and the gradients
    /// likewise; Separate: a buffer each, stride = width; Padded: a buffer each with stride width + 3 (scalar path).</summary>
    public enum Layout { Packed, Separate, Padded }

    private const int NumBuckets = 32;
    private const ushort Bf16Sentinel = 0x4640;  // 12288.0
    private const float Sentinel = 12345.5f;

    private sealed record Case(Kind Kind, Layout Layout, int B, int Tq, int Tk, int H, int Hkv, int Hs, bool KeyLengths, float Scale)
    {
        public int A => H * Hs;
        public int KV => Hkv * Hs;
        public bool Causal => Kind is Kind.Causal or Kind.Decoder;
        public bool HasBias => Kind is Kind.Encoder or Kind.Decoder;
        public bool TensorCores => AttentionTensorCores.Supports(Hs);
        public override string ToString() => $"{Kind} {Layout} B={B} Tq={Tq} Tk={Tk} H={H} Hkv={Hkv} hs={Hs} scale {Scale} key lengths {KeyLengths}";
    }

    //  kind           layout          B   Tq   Tk  H Hkv  hs  key lengths scale
    private static readonly object[] Cases =
    [
        new object[] { Kind.Causal, Layout.Packed, 2, 70, 70, 2, 2, 64, false, 0.125f },    // GPT-2's fused qkv and dqkv
        new object[] { Kind.Causal, Layout.Separate, 1, 130, 130, 1, 1, 128, false, 1f },   // Llama-style, 3 blocks, 5 key tiles
        new object[] { Kind.Causal, Layout.Separate, 2, 70, 70, 4, 2, 64, false, 1f },      // grouped-query, group 2
        new object[] { Kind.Causal, Layout.Packed, 1, 40, 40, 4, 1, 128, true, 1f },        // multi-query, packed
        new object[] { Kind.Encoder, Layout.Separate, 3, 70, 70, 2, 2, 64, true, 1f },      // key lengths 70, 35, 1
        new object[] { Kind.Encoder, Layout.Padded, 2, 40, 40, 1, 1, 128, true, 0.3f },     // scalar path
        new object[] { Kind.Encoder, Layout.Packed, 2, 1, 1, 1, 1, 64, true, 1f },          // T = 1
        new object[] { Kind.Decoder, Layout.Packed, 2, 33, 33, 2, 2, 64, false, 1f },
        new object[] { Kind.Cross, Layout.Packed, 2, 70, 5, 1, 1, 64, true, 1f },           // more queries than keys
        new object[] { Kind.Cross, Layout.Separate, 3, 1, 70, 2, 2, 128, true, 1f },        // Tq = 1
        // SIMT kernels reading bf16 (head sizes without tensor-core kernels)
        new object[] { Kind.Causal, Layout.Packed, 2, 70, 70, 2, 2, 16, false, 0.25f },     // the GPT-2 test fixtures' size
        new object[] { Kind.Encoder, Layout.Separate, 2, 33, 33, 3, 3, 24, true, 1f },      // odd head size, padded to 32
        new object[] { Kind.Decoder, Layout.Padded, 2, 33, 33, 1, 1, 100, false, 1f },      // padded to 128, scalar path
        new object[] { Kind.Cross, Layout.Packed, 2, 33, 70, 2, 2, 16, true, 1f },
    ];

    [TestCaseSource(nameof(Cases))]
    public void Bf16StorageMatchesTheCpuOps(Kind attention, Layout layout, int batch, int queryLength, int keyLength, int heads, int keyValueHeads,
        int headSize, bool keyLengths, float scale)
    {
        var c = new Case(attention, layout, batch, queryLength, keyLength, heads, keyValueHeads, headSize, keyLengths, scale);
        var x = Make(c);
        var (output, lse) = RunForward(c, x, out _);
        var reference = Reference(c, x, null);
        AssertNear(output, reference.Out, "out", c);
        AssertNear(lse, reference.Lse, "lse", c);

        // The backward on the kernel's own bf16 out: the reference gets the same out (D = rowsum(dout ∘ out)).
        var (dq, dk, dv) = RunBackward(c, x, output, lse);
        var withOut = Reference(c, x, output);
        AssertNear(dq, withOut.Dq, "dq", c);
        AssertNear(dk, withOut.Dk, "dk", c);
        AssertNear(dv, withOut.Dv, "dv", c);
    }

    /// <summary>
    /// The benchmark shapes' attention, one batch row of it: gpt2-small (12 heads of 64 over 100 + 256 positions, the fused
    /// qkv) and llama3.2-1b's grouped-query layout (4 query heads per kv head, head size 64; 8 of its 32 query heads). Six
    /// query blocks and six key tiles, so every block of the causal schedule and a partial last tile run, at the strides
    /// and offsets of the real tensors.
    /// </summary>
    [Category("Slow")]
    [TestCase(Layout.Packed, 12, 12, 0.125f)]
    [TestCase(Layout.Separate, 8, 2, 0.125f)]
    public void TheBenchmarkShapesMatchTheCpuOps(Layout layout, int heads, int keyValueHeads, float scale) =>
        Bf16StorageMatchesTheCpuOps(Kind.Causal, layout, 1, 356, 356, heads, keyValueHeads, 64, false, scale);

    // The SIMT kernels reading bf16 do the fp32 SIMT kernels' arithmetic on the same (bf16-exact) values: nothing may
    // differ but out's one rounding. Catches a wrong rounding mode, a stride or offset of the bf16 views, and any drift
    // between the variants. (Head sizes 64 / 128 run the tensor-core kernels in bf16, which have no fp32 twin.)
    [TestCase(Kind.Causal, Layout.Packed, 2, 70, 70, 2, 16, 0.25f)]
    [TestCase(Kind.Decoder, Layout.Separate, 2, 33, 33, 3, 24, 1f)]
    [TestCase(Kind.Encoder, Layout.Padded, 1, 33, 33, 1, 100, 1f)]
    public void Bf16StorageIsTheFp32KernelsArithmetic(Kind attention, Layout layout, int batch, int queryLength, int keyLength, int heads, int headSize, float scale)
    {
        var c = new Case(attention, layout, batch, queryLength, keyLength, heads, heads, headSize, attention != Kind.Decoder, scale);
        Assert.That(c.TensorCores, Is.False, "a SIMT head size");
        var x = Make(c);
        var (output, lse) = RunForward(c, x, out float[] fp32Out, out float[] fp32Lse);
        AssertBitEqual(lse, fp32Lse, "lse");
        for (int i = 0; i < output.Length; i++)
            if (BitConverter.SingleToUInt32Bits(output[i]) != BitConverter.SingleToUInt32Bits(RoundToBf16(fp32Out[i])))
                Assert.Fail($"out[{i}] = {output[i]:R}, the fp32 kernel's {fp32Out[i]:R} rounds to {RoundToBf16(fp32Out[i]):R} ({c})");

        var (dq, dk, dv) = RunBackward(c, x, output, lse);
        var (dq32, dk32, dv32) = RunBackward(c, x, output, lse, fp32Storage: true);
        AssertBitEqual(dq, dq32, "dq");
        AssertBitEqual(dk, dk32, "dk");
        AssertBitEqual(dv, dv32, "dv");
    }

    // out's one rounding, seen exactly: q = 0 makes every score 0, so with 4 visible keys each row of out is the mean of v's
    // 4 rows, computed exactly in fp32 (every P is 1, the row sum 4). Each column's v rows are 1, 1, 1 + δ, 1 with δ bf16
    // exact, so the mean 1 + δ/4 is known and its bf16 rounding too: the two ties must round to even (1 + 3·2^-8 up to
    // 1 + 2^-6, 1 + 2^-8 down to 1), the non-ties to nearest (1 + 3·2^-9 up to 1 + 2^-7, 1 + 2^-9 down to 1).
    // Truncation, rounding half up or a rounding before the division would give other bits. The tolerance of
    // Bf16StorageMatchesTheCpuOps (4 bf16 units) cannot see one unit, hence the exact case, at the tensor-core head sizes
    // and one SIMT head size.
    [TestCase(64)]
    [TestCase(128)]
    [TestCase(32)]
    public void OutIsTheMeanOfVRoundedToNearestEven(int headSize)
    {
        const int queries = 3, keys = 4;
        //                      δ          mean 1 + δ/4     its bf16 (round to nearest even)
        (float Delta, ushort Bits)[] columns =
        [
            (3f / 64, 0x3F82),   // 1 + 3·2^-8: a tie, up to the even 1 + 2^-6 (truncation: 1 + 2^-7)
            (1f / 64, 0x3F80),   // 1 + 2^-8:   a tie, down to the even 1 (rounding half up: 1 + 2^-7)
            (3f / 128, 0x3F81),  // 1 + 3·2^-9: nearest is 1 + 2^-7 (truncation: 1)
            (1f / 128, 0x3F80),  // 1 + 2^-9:   nearest is 1
        ];
        var v = new ushort[keys * headSize];
        for (int t = 0; t < keys; t++)
            for (int j = 0; j < headSize; j++) v[t * headSize + j] = Bits(t == 2 ? 1f + columns[j % columns.Length].Delta : 1f);
        using var q = Put(new ushort[queries * headSize]);
        using var k = Put(Enumerable.Range(0, keys * headSize).Select(i => Bits(MathF.Sin(i))).ToArray());
        using var vBuffer = Put(v);
        using var output = Put(Enumerable.Repeat((ushort)0x7FC0, queries * headSize).ToArray());
        using var lse = Put(new float[queries]);
        AttentionForward.Launch(Device, output.Span, headSize, lse.Span, q.Span, headSize, k.Span, headSize, vBuffer.Span, headSize, default, default, default,
            1, queries, keys, 1, headSize, causal: false, scale: 1f);
        var actual = output.Read();
        for (int i = 0; i < actual.Length; i++)
        {
            ushort expected = columns[i % headSize % columns.Length].Bits;
            if (actual[i] != expected)
                Assert.Fail($"out[{i / headSize}, {i % headSize}] = 0x{actual[i]:X4}, expected 0x{expected:X4} (hs {headSize})");
        }
    }

    [Test]
    public void Bf16OverloadsCheckShapesAndAliasing()
    {
        using var x = Put(new ushort[2 * 8 * 3 * 64]);
        using var lse = Put(new float[2 * 8]);
        var q = x.Span;
        Assert.That(() => AttentionForward.Launch(Device, q, 64, lse.Span, q, 192, q.Slice(64), 192, q.Slice(128), 192, default, default, default,
            2, 8, 8, 1, 64, causal: true, scale: 1f), Throws.ArgumentException.With.Message.Contains("alias"), "out over q");
        using var output = Put(new ushort[2 * 8 * 64 - 1]);
        Assert.That(() => AttentionForward.Launch(Device, output.Span, 64, lse.Span, q, 192, q.Slice(64), 192, q.Slice(128), 192, default, default, default,
            2, 8, 8, 1, 64, causal: true, scale: 1f), Throws.ArgumentException.With.Message.Contains("out [B, Tq, ·]"), "short out");
        Assert.That(() => AttentionForward.Launch(Device, output.Span, 64, lse.Span, q, 32, q.Slice(64), 192, q.Slice(128), 192, default, default, default,
            2, 8, 8, 1, 64, causal: true, scale: 1f), Throws.ArgumentException.With.Message.Contains("row strides"), "q stride below H·hs");
    }

    private sealed record Data(float[] Q, float[] K, float[] V, float[] Dout, int[] Lengths, float[] Table, int[] Buckets, double[] BiasPlane);

    private static float RoundToBf16(float x) => float.IsNaN(x) ? x : GemmReference.FromBf16(GemmReference.ToBf16(x));

    // q, k, v, dout: O(1) bf16-exact values; k, v rows past a row's key length NaN; a bias table of ±3.
    private static Data Make(Case c)
    {
        var rng = new Random((((int)c.Kind * 1009 + c.B) * 1009 + c.Tq) * 1009 + c.Tk * 31 + c.H * 7 + c.Hkv + c.Hs * 131);
        float[] Random(int n, float scale)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = RoundToBf16((float)(rng.NextDouble() * 2 - 1) * scale);
            return x;
        }
        float[] q = Random(c.B * c.Tq * c.A, 1f), k = Random(c.B * c.Tk * c.KV, 1f), v = Random(c.B * c.Tk * c.KV, 1f);
        float[] dout = Random(c.B * c.Tq * c.A, 1f), table = Random(NumBuckets * c.H, 3f);
        int[] lengths = [];
        if (c.KeyLengths)
        {
            lengths = [.. Enumerable.Range(0, c.B).Select(b => b switch { 0 => c.Tk, 1 => (c.Tk + 1) / 2, _ => 1 })];
            for (int b = 0; b < c.B; b++)
                for (int t = lengths[b]; t < c.Tk; t++)
                    for (int j = 0; j < c.KV; j++) k[(b * c.Tk + t) * c.KV + j] = v[(b * c.Tk + t) * c.KV + j] = float.NaN;
        }
        bool bidirectional = c.Kind == Kind.Encoder;
        int maxDistance = bidirectional ? 128 : 20;
        var buckets = new int[T5RelativeBuckets.Length(c.Tq, c.Tk)];
        T5RelativeBuckets.Compute(c.Tq, c.Tk, bidirectional, NumBuckets, maxDistance, buckets);
        double[] plane = [];
        if (c.HasBias)
        {
            plane = new double[c.H * c.Tq * c.Tk];
            RelativePositionOps.Bias<double>(plane, [.. table.Select(t => (double)t)], c.H, c.Tq, c.Tk, bidirectional, NumBuckets, maxDistance);
        }
        return new Data(q, k, v, dout, lengths, c.HasBias ? table : [], buckets, plane);
    }

    // Float64 reference on the bf16 values; the backward uses `kernelOut` (the kernel's bf16 out) when given.
    private static (float[] Out, float[] Lse, float[] Dq, float[] Dk, float[] Dv) Reference(Case c, Data x, float[]? kernelOut)
    {
        int queries = c.B * c.Tq, keys = c.B * c.Tk;
        double[] Wide(float[] narrow, int rows)
        {
            var wide = new double[rows * c.A];
            GroupedQueryOps.Repeat<double>(wide, [.. narrow.Select(e => (double)e)], rows, c.H, c.Hkv, c.Hs);
            return wide;
        }
        double[] q = [.. x.Q.Select(e => (double)e)], dout = [.. x.Dout.Select(e => (double)e)], k = Wide(x.K, keys), v = Wide(x.V, keys);
        var output = new double[queries * c.A];
        var lse = new double[queries * c.H];
        BiasedAttentionOps.Forward<double>(output, lse, q, k, v, x.BiasPlane, x.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
        double[] saved = kernelOut is null ? output : [.. kernelOut.Select(e => (double)e)];
        double[] dq = new double[queries * c.A], dkWide = new double[keys * c.A], dvWide = new double[keys * c.A];
        BiasedAttentionOps.Backward<double>(dq, dkWide, dvWide, dout, q, k, v, saved, lse, x.BiasPlane, x.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
        double[] dk = new double[keys * c.KV], dv = new double[keys * c.KV];
        GroupedQueryOps.Sum<double>(dk, dkWide, keys, c.H, c.Hkv, c.Hs);
        GroupedQueryOps.Sum<double>(dv, dvWide, keys, c.H, c.Hkv, c.Hs);
        static float[] F(double[] e) => [.. e.Select(d => (float)d)];
        return (F(output), F(lse), F(dq), F(dk), F(dv));
    }

    /// <summary>Where q, k, v (and dq, dk, dv alike) sit: buffer index, column offset and row stride of each.</summary>
    private static ((int Buffer, int Offset, int Stride) Q, (int Buffer, int Offset, int Stride) K, (int Buffer, int Offset, int Stride) V) Places(Case c)
    {
        int pad = c.Layout == Layout.Padded ? 3 : 0;
        return c.Layout switch
        {
            Layout.Packed when c.Kind != Kind.Cross => ((0, 0, c.A + 2 * c.KV), (0, c.A, c.A + 2 * c.KV), (0, c.A + c.KV, c.A + 2 * c.KV)),
            Layout.Packed => ((0, 0, c.A), (1, 0, 2 * c.KV), (1, c.KV, 2 * c.KV)),
            _ => ((0, 0, c.A + pad), (1, 0, c.KV + pad), (2, 0, c.KV + pad)),
        };
    }

    // Host images of the buffers holding the parts (rows, width, values; null values = NaN) at their places, sentinel elsewhere.
    private static T[][] Images<T>(Case c, T sentinel, Func<float, T> convert, params (int Buffer, int Offset, int Stride, int Rows, int Width, float[]? Values)[] parts)
    {
        int buffers = parts.Max(p => p.Buffer) + 1;
        var images = new T[buffers][];
        for (int i = 0; i < buffers; i++)
        {
            int length = parts.Where(p => p.Buffer == i).Max(p => p.Rows * p.Stride);
            images[i] = new T[length];
            Array.Fill(images[i], sentinel);
        }
        foreach (var (buffer, offset, stride, rows, width, values) in parts)
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < width; j++) images[buffer][r * stride + offset + j] = convert(values is null ? float.NaN : values[r * width + j]);
        return images;
    }

    private static ushort Bits(float x) => GemmReference.ToBf16(x);

    private (float[] Out, float[] Lse) RunForward(Case c, Data x, out float[] fp32Out) => RunForward(c, x, out fp32Out, out _);

    // The bf16 forward (out and lse) and, for comparison at the SIMT head sizes, the fp32-in-memory forward on the same values.
    private (float[] Out, float[] Lse) RunForward(Case c, Data x, out float[] fp32Out, out float[] fp32Lse)
    {
        var (pq, pk, pv) = Places(c);
        int queries = c.B * c.Tq, keys = c.B * c.Tk, outStride = c.A + (c.Layout == Layout.Padded ? 3 : 0);
        var parts = new[] { (pq.Buffer, pq.Offset, pq.Stride, queries, c.A, (float[]?)x.Q), (pk.Buffer, pk.Offset, pk.Stride, keys, c.KV, x.K), (pv.Buffer, pv.Offset, pv.Stride, keys, c.KV, x.V) };
        using var bias = new BiasArrays(this, x);
        float[] outImage = new float[queries * outStride];
        Array.Fill(outImage, Sentinel);
        for (int r = 0; r < queries; r++) Array.Fill(outImage, float.NaN, r * outStride, c.A);

        float[] lse;
        float[] output = new float[queries * c.A];
        {
            var images = Images(c, Bf16Sentinel, Bits, parts);
            var buffers = images.Select(i => Put(i)).ToArray();
            using var dOut = Put(outImage.Select(e => e == Sentinel ? Bf16Sentinel : Bits(e)).ToArray());
            using var dLse = Put(Enumerable.Repeat(float.NaN, queries * c.H).ToArray());
            AttentionForward.Launch(Device, dOut.Span, outStride, dLse.Span, buffers[pq.Buffer].Span.Slice(pq.Offset), pq.Stride,
                buffers[pk.Buffer].Span.Slice(pk.Offset), pk.Stride, buffers[pv.Buffer].Span.Slice(pv.Offset), pv.Stride,
                bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale, keyValueHeads: c.Hkv);
            var all = dOut.Read();
            for (int r = 0; r < queries; r++)
                for (int j = 0; j < outStride; j++)
                    if (j < c.A) output[r * c.A + j] = GemmReference.FromBf16(all[r * outStride + j]);
                    else if (all[r * outStride + j] != Bf16Sentinel) Assert.Fail($"out row {r}, column {j} lies outside the tensor but was written");
            lse = dLse.Read();
            foreach (var b in buffers) b.Dispose();
        }
        fp32Out = [];
        fp32Lse = [];
        if (!c.TensorCores && c.Hkv == c.H)
        {
            var images = Images(c, Sentinel, e => e, parts);
            var buffers = images.Select(i => Put(i)).ToArray();
            using var dOut = Put(outImage);
            using var dLse = Put(Enumerable.Repeat(float.NaN, queries * c.H).ToArray());
            AttentionForward.Launch(Device, dOut.Span, outStride, dLse.Span, buffers[pq.Buffer].Span.Slice(pq.Offset), pq.Stride,
                buffers[pk.Buffer].Span.Slice(pk.Offset), pk.Stride, buffers[pv.Buffer].Span.Slice(pv.Offset), pv.Stride,
                bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
            var all = dOut.Read();
            fp32Out = new float[queries * c.A];
            for (int r = 0; r < queries; r++) Array.Copy(all, r * outStride, fp32Out, r * c.A, c.A);
            fp32Lse = dLse.Read();
            foreach (var b in buffers) b.Dispose();
        }
        return (output, lse);
    }

    // dq, dk, dv from the bf16 kernels (or, with fp32Storage, the fp32-in-memory ones on the same values) given out and lse.
    private (float[] Dq, float[] Dk, float[] Dv) RunBackward(Case c, Data x, float[] output, float[] lse, bool fp32Storage = false)
    {
        var (pq, pk, pv) = Places(c);
        int queries = c.B * c.Tq, keys = c.B * c.Tk, pad = c.Layout == Layout.Padded ? 3 : 0, outStride = c.A + pad;
        var inputs = new[] { (pq.Buffer, pq.Offset, pq.Stride, queries, c.A, (float[]?)x.Q), (pk.Buffer, pk.Offset, pk.Stride, keys, c.KV, x.K), (pv.Buffer, pv.Offset, pv.Stride, keys, c.KV, x.V) };
        var grads = new[] { (pq.Buffer, pq.Offset, pq.Stride, queries, c.A, (float[]?)null), (pk.Buffer, pk.Offset, pk.Stride, keys, c.KV, null), (pv.Buffer, pv.Offset, pv.Stride, keys, c.KV, null) };
        var outPart = (0, 0, outStride, queries, c.A, (float[]?)output);
        using var bias = new BiasArrays(this, x);
        var gradBuffers = Images(c, Sentinel, e => e, grads).Select(i => Put(i)).ToArray();
        using var dDout = Put(Images(c, Sentinel, e => e, (0, 0, outStride, queries, c.A, x.Dout))[0]);
        using var dLse = Put(lse);
        using var scratch = Put(Enumerable.Repeat(float.NaN, queries * c.H).ToArray());
        DeviceSpan<float> G((int Buffer, int Offset, int Stride) p) => gradBuffers[p.Buffer].Span.Slice(p.Offset);
        if (fp32Storage)
        {
            var buffers = Images(c, Sentinel, e => e, inputs).Select(i => Put(i)).ToArray();
            using var dOut = Put(Images(c, Sentinel, e => e, outPart)[0]);
            AttentionBackward.Launch(Device, G(pq), pq.Stride, G(pk), pk.Stride, G(pv), pv.Stride, dDout.Span, outStride,
                buffers[pq.Buffer].Span.Slice(pq.Offset), pq.Stride, buffers[pk.Buffer].Span.Slice(pk.Offset), pk.Stride, buffers[pv.Buffer].Span.Slice(pv.Offset), pv.Stride,
                dOut.Span, outStride, dLse.Span, scratch.Span, bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
            foreach (var b in buffers) b.Dispose();
        }
        else
        {
            var buffers = Images(c, Bf16Sentinel, Bits, inputs).Select(i => Put(i)).ToArray();
            using var dOut = Put(Images(c, Bf16Sentinel, Bits, outPart)[0]);
            AttentionBackward.Launch(Device, G(pq), pq.Stride, G(pk), pk.Stride, G(pv), pv.Stride, dDout.Span, outStride,
                buffers[pq.Buffer].Span.Slice(pq.Offset), pq.Stride, buffers[pk.Buffer].Span.Slice(pk.Offset), pk.Stride, buffers[pv.Buffer].Span.Slice(pv.Offset), pv.Stride,
                dOut.Span, outStride, dLse.Span, scratch.Span, bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale, keyValueHeads: c.Hkv);
            foreach (var b in buffers) b.Dispose();
        }
        var images = gradBuffers.Select(b => b.Read()).ToArray();
        foreach (var b in gradBuffers) b.Dispose();
        float[] Extract((int Buffer, int Offset, int Stride) p, int rows, int width)
        {
            var part = new float[rows * width];
            for (int r = 0; r < rows; r++) Array.Copy(images[p.Buffer], r * p.Stride + p.Offset, part, r * width, width);
            return part;
        }
        // Every element outside the three gradients must still be the sentinel.
        var covered = images.Select(i => new bool[i.Length]).ToArray();
        foreach (var (p, rows, width) in new[] { (pq, queries, c.A), (pk, keys, c.KV), (pv, keys, c.KV) })
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < width; j++) covered[p.Buffer][r * p.Stride + p.Offset + j] = true;
        for (int i = 0; i < images.Length; i++)
            for (int e = 0; e < images[i].Length; e++)
                if (!covered[i][e] && images[i][e] != Sentinel) Assert.Fail($"gradient buffer {i}, element {e} lies outside every tensor but was written");
        return (Extract(pq, queries, c.A), Extract(pk, keys, c.KV), Extract(pv, keys, c.KV));
    }

    private sealed class BiasArrays : IDisposable
    {
        private readonly DeviceArray<float>? table;
        private readonly DeviceArray<int>? buckets, lengths;
        public DeviceSpan<float> Table => table?.Span ?? default;
        public DeviceSpan<int> Buckets => buckets?.Span ?? default;
        public DeviceSpan<int> Lengths => lengths?.Span ?? default;

        public BiasArrays(Bf16StorageAttentionTests test, Data x)
        {
            if (x.Table.Length > 0) (table, buckets) = (test.Put(x.Table), test.Put(x.Buckets));
            if (x.Lengths.Length > 0) lengths = test.Put(x.Lengths);
        }

        public void Dispose()
        {
            table?.Dispose();
            buckets?.Dispose();
            lengths?.Dispose();
        }
    }

    // Tensor cores: 4 bf16 units of max(max |expected|, 1) (P and dS rounded as mma operands; see
    // T5KernelAttentionTests.Bf16Tolerance), lse fp32. SIMT: the fp32 bar, plus out's one rounding to bf16 (half a unit: 2^-8 relative).
    private static void AssertNear(float[] actual, float[] expected, string what, Case c)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        double maxAbs = 0, maxErr = 0;
        foreach (float e in expected) maxAbs = Math.Max(maxAbs, Math.Abs(e));
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            double fp32 = 2e-5 * Math.Max(maxAbs, 1) + 1e-4 * Math.Abs(expected[i]);
            double tolerance = c.TensorCores ? (what == "lse" ? 1.2e-4 : 4.0 / 512) * Math.Max(maxAbs, 1)
                : what == "out" ? fp32 + Math.Abs(expected[i]) / 256 : fp32;
            if (!(err <= tolerance))
                Assert.Fail($"{what}[{i}] = {actual[i]:R}, expected {expected[i]:R} (error {err:E2}, tolerance {tolerance:E2}, max |x| {maxAbs:G4}; {c})");
            maxErr = Math.Max(maxErr, err);
        }
        TestContext.Out.WriteLine($"{what}: max error {maxErr:E2}, max |x| = {maxAbs:G4}");
    }

    private static void AssertBitEqual(float[] actual, float[] expected, string what)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(actual[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
                Assert.Fail($"{what}[{i}] = {actual[i]:R}, the fp32-in-memory kernel gives {expected[i]:R}");
    }
}

using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// kernels/attention.cu (T5 flavours: bias, key lengths, Tq ≠ Tk) against <see cref="BiasedAttentionOps"/> with the bias plane of
/// <see cref="RelativePositionOps.Bias"/> (the CPU reference), on the emulator and (Category "Gpu") on a real GPU:
/// encoder self-attention (bidirectional buckets + key lengths), decoder self-attention (causal + unidirectional buckets)
/// and cross-attention (Tq ≠ Tk, key lengths, no bias); q/k/v packed in one qkv buffer (stride 3A), cross-attention's
/// separate q + packed kv (stride 2A), three separate buffers (stride A) and padded rows (stride A + 3, scalar path);
/// scores scaled by 1 (T5) or not (GPT-2-style 1/√hs, others); outputs (out, dq, dk, dv) and dout dense, interleaved in
/// shared buffers (GPT-2's dqkv layout) or padded. Outputs and scratch start as NaN (every element must be written), the
/// columns between strided outputs as a sentinel (never written); k/v rows past a row's key length are NaN (they must
/// never be read) and their dk/dv must come out 0. Timing: benchmarks/SoftPrompt.Benchmarks/AttentionKernelBenchmarks.cs.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed partial class T5KernelAttentionTests(DeviceKind kind) : KernelTestBase(kind)
{
    public enum Kind { Encoder, Decoder, Cross }

    /// <summary>
    /// How q, k, v sit in device memory. Packed: self-attention's one qkv buffer [B, T, 3A] (q, k, v at columns 0, A, 2A,
    /// stride 3A); cross-attention's q [B, Tq, A] plus one kv buffer [B, Tk, 2A] (stride 2A). Separate: three buffers,
    /// stride A. Padded: three buffers with stride A + 3 and NaN in the 3 extra columns (misaligned rows: scalar path).
    /// </summary>
    public enum Layout { Packed, Separate, Padded }

    /// <summary>
    /// How out, dout, dq, dk, dv sit in device memory. Dense: a buffer each, stride A. Interleaved: dq, dk, dv as the
    /// column slices 0, A, 2A of one [B·T, 3A] buffer (GPT-2's dqkv; cross-attention: dq alone and dk, dv in one
    /// [B·Tk, 2A]), and out, dout as the slices 0, A of one [B·Tq, 2A]. Padded: a buffer each with stride A + 3
    /// (misaligned rows: scalar path).
    /// </summary>
    public enum Outputs { Dense, Interleaved, Padded }

    private const int NumBuckets = 32;

    private sealed record Case(Kind Kind, int B, int Tq, int Tk, int H, int Hs, int[]? KeyLengths, float Scale, float[] Table, int[] Buckets,
        float[] Q, float[] K, float[] V, float[] Dout, float[] Out, float[] Lse, float[] Dq, float[] Dk, float[] Dv)
    {
        public int A => H * Hs;
        /// <summary>
        /// q, k, v and out bf16 in memory (the launchers' DeviceSpan&lt;ushort&gt; overloads: the bf16 tensor-core kernels of
        /// attention_tc.cu at hs 64 and 128); compared with <see cref="Bf16Tolerance"/>.
        /// </summary>
        public bool Bf16Storage { get; init; }
        public bool Causal => Kind == Kind.Decoder;
        public bool HasBias => Kind != Kind.Cross;
        public override string ToString() =>
            $"{Kind} B={B} Tq={Tq} Tk={Tk} H={H} hs={Hs} scale {Scale} key lengths [{(KeyLengths is null ? "absent" : string.Join(", ", KeyLengths))}]";
    }

    // Random q, k, v (O(1), unscaled as in T5: scores of a few units), a bias table of ±3, dout, and the CPU reference
    // of both passes. Encoder: buckets of 32 up to distance 128; decoder: unidirectional, max distance 20 (the last
    // bucket is reached).
    // bf16Exact: q, k, v and dout rounded to bf16 before anything else (the tensor-core tests: the kernels' own rounding
    // of them is then exact, and the reference is the fp32 CPU op on the very values the tensor cores multiply).
    private static Case Make(Kind attention, int batch, int queryLength, int keyLength, int heads, int headSize, bool keyLengths, float scale = 1f,
        bool bf16Exact = false)
    {
        var rng = new Random(((((int)attention * 1009 + batch) * 1009 + queryLength) * 1009 + keyLength) * 1009 + heads * 131 + headSize);
        int a = heads * headSize;
        float[] Random(int n, float scale)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
            return x;
        }
        float[] q = Random(batch * queryLength * a, 1f), k = Random(batch * keyLength * a, 1f), v = Random(batch * keyLength * a, 1f);
        float[] dout = Random(batch * queryLength * a, 1f), table = Random(NumBuckets * heads, 3f);
        if (bf16Exact)
            foreach (var x in new[] { q, k, v, dout })
                for (int i = 0; i < x.Length; i++) x[i] = RoundToBf16(x[i]);
        int[]? lengths = null;
        if (keyLengths)
        {
            lengths = new int[batch];
            for (int b = 0; b < batch; b++) lengths[b] = b switch { 0 => keyLength, 1 => (keyLength + 1) / 2, 2 => 1, _ => 1 + rng.Next(keyLength) };
            // Keys past a row's length are padding: NaN proves that no kernel reads them.
            for (int b = 0; b < batch; b++)
                for (int t = lengths[b]; t < keyLength; t++)
                    for (int c = 0; c < a; c++) k[(b * keyLength + t) * a + c] = v[(b * keyLength + t) * a + c] = float.NaN;
        }

        bool bidirectional = attention == Kind.Encoder;
        int maxDistance = bidirectional ? 128 : 20;
        var buckets = new int[T5RelativeBuckets.Length(queryLength, keyLength)];
        T5RelativeBuckets.Compute(queryLength, keyLength, bidirectional, NumBuckets, maxDistance, buckets);
        float[] bias = [];
        if (attention != Kind.Cross)
        {
            bias = new float[heads * queryLength * keyLength];
            RelativePositionOps.Bias<float>(bias, table, heads, queryLength, keyLength, bidirectional, NumBuckets, maxDistance);
        }

        bool causal = attention == Kind.Decoder;
        var output = new float[q.Length];
        var lse = new float[batch * heads * queryLength];
        BiasedAttentionOps.Forward<float>(output, lse, q, k, v, bias, lengths ?? [], batch, queryLength, keyLength, heads, headSize, causal, scale);
        var dq = new float[q.Length];
        var dk = new float[k.Length];
        var dv = new float[v.Length];
        BiasedAttentionOps.Backward<float>(dq, dk, dv, dout, q, k, v, output, lse, bias, lengths ?? [], batch, queryLength, keyLength, heads, headSize, causal, scale);
        return new Case(attention, batch, queryLength, keyLength, heads, headSize, lengths, scale, attention == Kind.Cross ? [] : table, buckets,
            q, k, v, dout, output, lse, dq, dk, dv);
    }

    private static float[] Filled(int n, float value)
    {
        var x = new float[n];
        Array.Fill(x, value);
        return x;
    }

    // |actual − expected| ≤ looseness·(2e-5·max(max|expected|, 1) + 1e-4·|expected|) element-wise (fp32, other summation
    // orders; as AttentionKernelTests). NaN fails.
    private static void AssertNear(float[] actual, float[] expected, string what, Case c, double looseness = 1)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        double maxAbs = 0, maxErr = 0;
        foreach (float e in expected) maxAbs = Math.Max(maxAbs, Math.Abs(e));
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            double tolerance = c.Bf16Storage ? looseness * Bf16Tolerance(what) * Math.Max(maxAbs, 1)
                : looseness * (2e-5 * Math.Max(maxAbs, 1) + 1e-4 * Math.Abs(expected[i]));
            if (!(err <= tolerance))
                Assert.Fail($"{what}[{i}] = {actual[i]:R}, expected {expected[i]:R} (error {err:E2}, tolerance {tolerance:E2}, max |x| {maxAbs:G4}; {c})");
            maxErr = Math.Max(maxErr, err);
        }
        TestContext.Out.WriteLine($"{what}: max error {maxErr:E2}, max |x| = {maxAbs:G4}");
    }

    /// <summary>q, k, v on the device in one of the layouts, with their row strides: fp32 (Q, K, V) or, for a case with
    /// <see cref="Case.Bf16Storage"/>, the same values rounded to bf16 (Q16, K16, V16).</summary>
    private sealed class Inputs : IDisposable
    {
        private readonly List<IDisposable> owned = [];
        public DeviceSpan<float> Q, K, V;
        public DeviceSpan<ushort> Q16, K16, V16;
        public int QStride, KStride, VStride;

        public Inputs(T5KernelAttentionTests test, Case c, Layout layout)
        {
            if (c.Bf16Storage) (Q16, K16, V16) = Place<ushort>(c, layout, host => Own(test.Put(host.Select(GemmReference.ToBf16).ToArray())));
            else (Q, K, V) = Place<float>(c, layout, host => Own(test.Put(host)));
        }

        private DeviceSpan<T> Own<T>(DeviceArray<T> buffer) where T : unmanaged
        {
            owned.Add(buffer);
            return buffer.Span;
        }

        private (DeviceSpan<T> Q, DeviceSpan<T> K, DeviceSpan<T> V) Place<T>(Case c, Layout layout, Func<float[], DeviceSpan<T>> put) where T : unmanaged
        {
            int a = c.A;
            switch (layout)
            {
                case Layout.Packed when c.Kind != Kind.Cross:
                {
                    var qkv = put(Interleave(c.B * c.Tq, a, 3 * a, c.Q, c.K, c.V));
                    QStride = KStride = VStride = 3 * a;
                    return (qkv, qkv.Slice(a), qkv.Slice(2 * a));
                }
                case Layout.Packed:
                {
                    var kv = put(Interleave(c.B * c.Tk, a, 2 * a, c.K, c.V));
                    QStride = a;
                    KStride = VStride = 2 * a;
                    return (put(c.Q), kv, kv.Slice(a));
                }
                default:
                {
                    int stride = layout == Layout.Padded ? a + 3 : a;
                    QStride = KStride = VStride = stride;
                    return (put(Interleave(c.B * c.Tq, a, stride, c.Q)), put(Interleave(c.B * c.Tk, a, stride, c.K)), put(Interleave(c.B * c.Tk, a, stride, c.V)));
                }
            }
        }

        // rows × stride, part p's row r at columns [p·A, p·A + A), NaN in the columns no part covers.
        private static float[] Interleave(int rows, int a, int stride, params float[][] parts)
        {
            var x = Filled(rows * stride, float.NaN);
            for (int r = 0; r < rows; r++)
                for (int p = 0; p < parts.Length; p++)
                    Array.Copy(parts[p], r * a, x, r * stride + p * a, a);
            return x;
        }

        public void Dispose()
        {
            foreach (var d in owned) d.Dispose();
        }
    }

    private sealed class Bias : IDisposable
    {
        private readonly DeviceArray<float>? table;
        private readonly DeviceArray<int>? buckets;
        private readonly DeviceArray<int>? lengths;
        public DeviceSpan<float> Table => table?.Span ?? default;
        public DeviceSpan<int> Buckets => buckets?.Span ?? default;
        public DeviceSpan<int> Lengths => lengths?.Span ?? default;

        public Bias(T5KernelAttentionTests test, Case c)
        {
            if (c.HasBias)
            {
                table = test.Put(c.Table);
                buckets = test.Put(c.Buckets);
            }
            if (c.KeyLengths is not null) lengths = test.Put(c.KeyLengths);
        }

        public void Dispose()
        {
            table?.Dispose();
            buckets?.Dispose();
            lengths?.Dispose();
        }
    }

    /// <summary>
    /// One device buffer of [rows, stride] holding one or more [rows, A] tensors at column offsets (an interleaved
    /// layout); every other column is a sentinel that no kernel may write. fp32, or bf16 (<c>bf16</c>: Part16, read back
    /// widened to fp32).
    /// </summary>
    private sealed class Block : IDisposable
    {
        private const float Sentinel = 12288f;  // exact in bf16 too
        private readonly DeviceArray<float>? buffer;
        private readonly DeviceArray<ushort>? buffer16;
        private readonly int rows, stride, a;
        private readonly int[] offsets;

        public Block(T5KernelAttentionTests test, int rows, int a, int stride, params (int Offset, float[]? Data)[] parts)
            : this(test, false, rows, a, stride, parts) { }

        public Block(T5KernelAttentionTests test, bool bf16, int rows, int a, int stride, params (int Offset, float[]? Data)[] parts)
        {
            (this.rows, this.stride, this.a) = (rows, stride, a);
            offsets = parts.Select(p => p.Offset).ToArray();
            var host = Filled(rows * stride, Sentinel);
            foreach (var (offset, data) in parts)
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < a; c++) host[r * stride + offset + c] = data is null ? float.NaN : data[r * a + c];
            if (bf16) buffer16 = test.Put(host.Select(GemmReference.ToBf16).ToArray());
            else buffer = test.Put(host);
        }

        public int Stride => stride;
        public DeviceSpan<float> Part(int i) => buffer!.Span.Slice(offsets[i]);
        public DeviceSpan<ushort> Part16(int i) => buffer16!.Span.Slice(offsets[i]);

        /// <summary>Part i as a dense [rows, A] array, after checking that no column outside the parts was written.</summary>
        public float[] Read(int i)
        {
            float[] all = buffer16 is null ? buffer!.Read() : [.. buffer16.Read().Select(GemmReference.FromBf16)];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < stride; c++)
                    if (!offsets.Any(o => c >= o && c < o + a) && all[r * stride + c] != Sentinel)
                        Assert.Fail($"row {r}, column {c} of a [{rows}, {stride}] buffer lies outside every tensor but was written ({all[r * stride + c]:R})");
            var x = new float[rows * a];
            for (int r = 0; r < rows; r++) Array.Copy(all, r * stride + offsets[i], x, r * a, a);
            return x;
        }

        public void Dispose()
        {
            buffer?.Dispose();
            buffer16?.Dispose();
        }
    }

    /// <summary>out and dout (dout holds the case's values), dq, dk, dv on the device in one of the output layouts; out bf16
    /// for a case with <see cref="Case.Bf16Storage"/> (then interleaved out and dout sit in two buffers of the same stride).</summary>
    private sealed class Results : IDisposable
    {
        private readonly List<Block> owned = [];
        private readonly Block outBlock, doutBlock, dqBlock, dkBlock, dvBlock;
        private readonly int outPart, doutPart, dqPart, dkPart, dvPart;

        public Results(T5KernelAttentionTests test, Case c, Outputs layout)
        {
            int a = c.A, queries = c.B * c.Tq, keys = c.B * c.Tk;
            Block Own(Block b) { owned.Add(b); return b; }
            switch (layout)
            {
                case Outputs.Interleaved:
                    if (c.Bf16Storage)
                    {
                        outBlock = Own(new Block(test, true, queries, a, 2 * a, (0, null)));
                        doutBlock = Own(new Block(test, queries, a, 2 * a, (a, c.Dout)));
                        (outPart, doutPart) = (0, 0);
                    }
                    else
                    {
                        outBlock = doutBlock = Own(new Block(test, queries, a, 2 * a, (0, null), (a, c.Dout)));
                        (outPart, doutPart) = (0, 1);
                    }
                    if (c.Tq == c.Tk)
                    {
                        dqBlock = dkBlock = dvBlock = Own(new Block(test, queries, a, 3 * a, (0, null), (a, null), (2 * a, null)));
                        (dqPart, dkPart, dvPart) = (0, 1, 2);
                    }
                    else
                    {
                        dqBlock = Own(new Block(test, queries, a, a, (0, null)));
                        dkBlock = dvBlock = Own(new Block(test, keys, a, 2 * a, (0, null), (a, null)));
                        (dqPart, dkPart, dvPart) = (0, 0, 1);
                    }
                    break;
                default:
                    int stride = layout == Outputs.Padded ? a + 3 : a;
                    outBlock = Own(new Block(test, c.Bf16Storage, queries, a, stride, (0, null)));
                    doutBlock = Own(new Block(test, queries, a, stride, (0, c.Dout)));
                    dqBlock = Own(new Block(test, queries, a, stride, (0, null)));
                    dkBlock = Own(new Block(test, keys, a, stride, (0, null)));
                    dvBlock = Own(new Block(test, keys, a, stride, (0, null)));
                    break;
            }
        }

        public DeviceSpan<float> Out => outBlock.Part(outPart);
        public DeviceSpan<ushort> Out16 => outBlock.Part16(outPart);
        public int OutStride => outBlock.Stride;
        public DeviceSpan<float> Dout => doutBlock.Part(doutPart);
        public int DoutStride => doutBlock.Stride;
        public DeviceSpan<float> Dq => dqBlock.Part(dqPart);
        public int DqStride => dqBlock.Stride;
        public DeviceSpan<float> Dk => dkBlock.Part(dkPart);
        public int DkStride => dkBlock.Stride;
        public DeviceSpan<float> Dv => dvBlock.Part(dvPart);
        public int DvStride => dvBlock.Stride;

        public float[] ReadOut() => outBlock.Read(outPart);
        public (float[] Dq, float[] Dk, float[] Dv) ReadGradients() => (dqBlock.Read(dqPart), dkBlock.Read(dkPart), dvBlock.Read(dvPart));

        public void Dispose()
        {
            foreach (var b in owned) b.Dispose();
        }
    }

    private void Forward(Case c, Inputs x, Bias bias, Results r, DeviceSpan<float> lse)
    {
        if (c.Bf16Storage)
            AttentionForward.Launch(Device, r.Out16, r.OutStride, lse, x.Q16, x.QStride, x.K16, x.KStride, x.V16, x.VStride,
                bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
        else
            AttentionForward.Launch(Device, r.Out, r.OutStride, lse, x.Q, x.QStride, x.K, x.KStride, x.V, x.VStride,
                bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
    }

    private void Backward(Case c, Inputs x, Bias bias, Results r, DeviceSpan<float> lse, DeviceSpan<float> scratch)
    {
        if (c.Bf16Storage)
            AttentionBackward.Launch(Device, r.Dq, r.DqStride, r.Dk, r.DkStride, r.Dv, r.DvStride, r.Dout, r.DoutStride,
                x.Q16, x.QStride, x.K16, x.KStride, x.V16, x.VStride, r.Out16, r.OutStride, lse, scratch,
                bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
        else
            AttentionBackward.Launch(Device, r.Dq, r.DqStride, r.Dk, r.DkStride, r.Dv, r.DvStride, r.Dout, r.DoutStride,
                x.Q, x.QStride, x.K, x.KStride, x.V, x.VStride, r.Out, r.OutStride, lse, scratch,
                bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
    }

    // The backward from the given out (written into the results' out) and lse, on fresh NaN-filled gradients.
    private (float[] Dq, float[] Dk, float[] Dv) RunBackward(Case c, Inputs x, Bias bias, float[] output, DeviceSpan<float> lse, Outputs layout = Outputs.Dense)
    {
        using var r = new Results(this, c, layout);
        using var scratch = Put(Filled(c.B * c.H * c.Tq, float.NaN));
        for (int row = 0; row < c.B * c.Tq; row++)
            Device.CopyToDevice<float>(output.AsSpan(row * c.A, c.A), r.Out.Slice((long)row * r.OutStride, c.A));
        Backward(c, x, bias, r, lse, scratch.Span);
        return r.ReadGradients();
    }

    private void ForwardAndBackward(Case c, Layout layout, Outputs outputs = Outputs.Dense)
    {
        using var x = new Inputs(this, c, layout);
        using var bias = new Bias(this, c);
        using var r = new Results(this, c, outputs);
        using var lse = Put(Filled(c.Lse.Length, float.NaN));
        using var scratch = Put(Filled(c.B * c.H * c.Tq, float.NaN));
        Forward(c, x, bias, r, lse.Span);
        AssertNear(r.ReadOut(), c.Out, "out", c);
        AssertNear(lse.Read(), c.Lse, "lse", c);

        // The backward on the kernel's own out and lse (close to the CPU's, checked above).
        Backward(c, x, bias, r, lse.Span, scratch.Span);
        var (dq, dk, dv) = r.ReadGradients();
        AssertNear(dq, c.Dq, "dq", c);
        AssertNear(dk, c.Dk, "dk", c);
        AssertNear(dv, c.Dv, "dv", c);
    }

    //  kind          layout           B  Tq  Tk  H  hs  key lengths
    private static readonly object[] Cases =
    [
        new object[] { Kind.Encoder, Layout.Packed, 2, 1, 1, 2, 8, true },       // T = 1
        new object[] { Kind.Encoder, Layout.Packed, 2, 5, 5, 3, 16, true },
        new object[] { Kind.Encoder, Layout.Packed, 3, 33, 33, 2, 33, true },    // hs 33: padded to 64, scalar path
        new object[] { Kind.Encoder, Layout.Packed, 2, 70, 70, 2, 64, true },    // two query tiles, the second partial
        new object[] { Kind.Encoder, Layout.Separate, 3, 70, 70, 1, 16, true },
        new object[] { Kind.Encoder, Layout.Separate, 1, 33, 33, 2, 8, false },  // no key lengths
        new object[] { Kind.Encoder, Layout.Padded, 2, 33, 33, 2, 64, true },    // stride A + 3: scalar path at hs 64
        new object[] { Kind.Encoder, Layout.Separate, 2, 40, 40, 1, 128, true }, // padded 128 variant
        new object[] { Kind.Decoder, Layout.Packed, 2, 1, 1, 1, 64, false },
        new object[] { Kind.Decoder, Layout.Packed, 2, 5, 5, 2, 33, false },
        new object[] { Kind.Decoder, Layout.Packed, 1, 33, 33, 2, 16, false },
        new object[] { Kind.Decoder, Layout.Separate, 2, 70, 70, 2, 8, false },
        new object[] { Kind.Decoder, Layout.Packed, 1, 70, 70, 2, 64, false },
        new object[] { Kind.Decoder, Layout.Padded, 2, 33, 33, 1, 16, true },    // causal and key lengths together
        new object[] { Kind.Cross, Layout.Packed, 2, 5, 33, 2, 16, true },
        new object[] { Kind.Cross, Layout.Packed, 2, 70, 5, 1, 64, true },       // more queries than keys
        new object[] { Kind.Cross, Layout.Separate, 3, 1, 70, 2, 33, true },     // Tq = 1, two key tiles
        new object[] { Kind.Cross, Layout.Separate, 1, 33, 1, 2, 8, false },     // Tk = 1, no key lengths
        new object[] { Kind.Cross, Layout.Padded, 2, 20, 37, 1, 100, true },     // hs 100: padded 128, scalar path
    ];

    [TestCaseSource(nameof(Cases))]
    public void ForwardAndBackwardMatchTheCpuOps(Kind attention, Layout layout, int batch, int queryLength, int keyLength, int heads,
        int headSize, bool keyLengths) =>
        ForwardAndBackward(Make(attention, batch, queryLength, keyLength, heads, headSize, keyLengths), layout);

    // Scores scaled (GPT-2's 1/√hs and others, with the bias added after the scale) and outputs at their own row strides:
    // interleaved in shared buffers (GPT-2's dqkv layout) or padded (scalar path).
    //  kind          inputs           outputs              B  Tq  Tk  H  hs  key lengths scale
    private static readonly object[] ScaledCases =
    [
        new object[] { Kind.Decoder, Layout.Packed, Outputs.Interleaved, 2, 70, 70, 2, 64, false, 0.125f },    // GPT-2's layout, plus a bias
        new object[] { Kind.Encoder, Layout.Packed, Outputs.Interleaved, 3, 5, 5, 3, 33, true, 0.17407766f },  // 1/√33, scalar path
        new object[] { Kind.Encoder, Layout.Separate, Outputs.Padded, 2, 33, 33, 2, 16, true, 0.3f },
        new object[] { Kind.Decoder, Layout.Separate, Outputs.Dense, 1, 1, 1, 1, 8, false, 2.5f },             // T = 1, scale > 1
        new object[] { Kind.Decoder, Layout.Padded, Outputs.Padded, 1, 65, 65, 1, 128, false, 0.08838835f },   // 1/√128, padded 128 variant
        new object[] { Kind.Cross, Layout.Packed, Outputs.Interleaved, 2, 20, 37, 2, 32, true, 0.5f },         // dk, dv share a buffer
        new object[] { Kind.Cross, Layout.Padded, Outputs.Padded, 2, 20, 37, 1, 100, true, 0.1f },
    ];

    [TestCaseSource(nameof(ScaledCases))]
    public void ScaledScoresAndStridedOutputsMatchTheCpuOps(Kind attention, Layout layout, Outputs outputs, int batch, int queryLength, int keyLength,
        int heads, int headSize, bool keyLengths, float scale) =>
        ForwardAndBackward(Make(attention, batch, queryLength, keyLength, heads, headSize, keyLengths, scale), layout, outputs);

    [TestCase(Kind.Encoder, Layout.Packed, Outputs.Dense, 2, 70, 70, 2, 64)]
    [TestCase(Kind.Decoder, Layout.Separate, Outputs.Dense, 1, 70, 70, 1, 128)]
    [TestCase(Kind.Cross, Layout.Packed, Outputs.Dense, 2, 33, 70, 2, 16)]
    [TestCase(Kind.Decoder, Layout.Packed, Outputs.Interleaved, 2, 70, 70, 2, 64, 0.125f)]
    public void BackwardIsBitReproducible(Kind attention, Layout layout, Outputs outputs, int batch, int queryLength, int keyLength, int heads, int headSize,
        float scale = 1f)
    {
        var c = Make(attention, batch, queryLength, keyLength, heads, headSize, keyLengths: attention != Kind.Decoder, scale);
        using var x = new Inputs(this, c, layout);
        using var bias = new Bias(this, c);
        using var lse = Put(c.Lse);
        var first = RunBackward(c, x, bias, c.Out, lse.Span, outputs);
        var second = RunBackward(c, x, bias, c.Out, lse.Span, outputs);
        AssertBitEqual(second.Dq, first.Dq, $"dq ({c})");
        AssertBitEqual(second.Dk, first.Dk, $"dk ({c})");
        AssertBitEqual(second.Dv, first.Dv, $"dv ({c})");
        AssertNear(first.Dq, c.Dq, "dq", c);
    }

    // Spans that are slices of larger buffers (longer than needed) with sentinels around them: nothing outside is touched.
    [Test]
    public void OutputsStayInsideTheirSpans()
    {
        var c = Make(Kind.Encoder, 2, 33, 33, 2, 16, keyLengths: true);
        const int offset = 4, tail = 37;
        const float sentinel = 12345.5f;
        using var x = new Inputs(this, c, Layout.Packed);
        using var bias = new Bias(this, c);
        DeviceArray<float> Guarded(int length)
        {
            var data = Filled(offset + length + tail, sentinel);
            Array.Fill(data, float.NaN, offset, length);
            return Put(data);
        }
        DeviceSpan<float> Inside(DeviceArray<float> a) => a.Span.Slice(offset);
        using var output = Guarded(c.Out.Length);
        using var lse = Guarded(c.Lse.Length);
        using var dq = Guarded(c.Q.Length);
        using var dk = Guarded(c.K.Length);
        using var dv = Guarded(c.V.Length);
        using var scratch = Guarded(c.Lse.Length);
        using var dout = Put(c.Dout);
        int a = c.A;
        AttentionForward.Launch(Device, Inside(output), a, Inside(lse), x.Q, x.QStride, x.K, x.KStride, x.V, x.VStride,
            bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
        AttentionBackward.Launch(Device, Inside(dq), a, Inside(dk), a, Inside(dv), a, dout.Span, a, x.Q, x.QStride, x.K, x.KStride, x.V, x.VStride,
            Inside(output), a, Inside(lse), Inside(scratch), bias.Table, bias.Buckets, bias.Lengths, c.B, c.Tq, c.Tk, c.H, c.Hs, c.Causal, c.Scale);
        foreach (var (name, array, expected) in new[] { ("out", output, c.Out), ("lse", lse, c.Lse), ("dq", dq, c.Dq), ("dk", dk, c.Dk), ("dv", dv, c.Dv) })
        {
            float[] all = array.Read();
            AssertNear(all[offset..(offset + expected.Length)], expected, name, c);
            Assert.That(all[..offset], Is.All.EqualTo(sentinel), $"{name}: elements before the span were written");
            Assert.That(all[(offset + expected.Length)..], Is.All.EqualTo(sentinel), $"{name}: elements past the span were written");
        }
    }

    [Test]
    public void LaunchersRejectWhatTheKernelsCannotRun()
    {
        using var big = Zeros<float>(4096);
        using var ints = Zeros<int>(64);
        var s = big.Span;
        var i = ints.Span;
        // B = 1, Tq = Tk = 4, H = 2, hs = 8: A = 16. Forward: out [0, 64), lse [1000, 1008), q [2000, 2064), k [3000, 3064),
        // v [3500, 3564) at stride 16 unless a case says otherwise.
        void Forward(DeviceSpan<float> output, int outStride, DeviceSpan<float> lse, DeviceSpan<float> q, int qStride, DeviceSpan<float> k, int kStride,
            DeviceSpan<float> table = default, DeviceSpan<int> buckets = default, DeviceSpan<int> lengths = default, int batch = 1, int headSize = 8, float scale = 1f) =>
            AttentionForward.Launch(Device, output, outStride, lse, q, qStride, k, kStride, s.Slice(3500), 16, table, buckets, lengths, batch, 4, 4, 2, headSize, false, scale);
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16, headSize: 129),
            Throws.ArgumentException.With.Message.Contains("head size 129"));
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 15, s.Slice(3000), 16),
            Throws.ArgumentException.With.Message.Contains("row strides"));
        Assert.That(() => Forward(s, 15, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16),
            Throws.ArgumentException.With.Message.Contains("row stride of out"));
        Assert.That(() => Forward(s.Slice(0, 100), 48, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16),
            Throws.ArgumentException.With.Message.Contains("out [B, Tq"));
        Assert.That(() => Forward(s, 16, s.Slice(0, 7), s.Slice(2000), 16, s.Slice(3000), 16),
            Throws.ArgumentException.With.Message.Contains("lse"));
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 48, s.Slice(3950), 48),
            Throws.ArgumentException.With.Message.Contains("k [B, Tk"));
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16, table: s.Slice(0, 64), buckets: i.Slice(0, 6)),
            Throws.ArgumentException.With.Message.Contains("bucketByOffset"));
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16, lengths: i.Slice(0, 1), batch: 2),
            Throws.ArgumentException.With.Message.Contains("keyLengths"));
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16, scale: 0f),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("scale"));
        Assert.That(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16, scale: float.NaN),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("scale"));
        Assert.That(() => Forward(s.Slice(2000), 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16),
            Throws.ArgumentException.With.Message.Contains("alias"));
        Assert.That(() => Forward(s.Slice(2040), 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16),
            Throws.ArgumentException.With.Message.Contains("alias"), "out starting inside q's rows");

        // Backward: dq [0, 64), dk [100, 164), dv [200, 264), dout [300, 364), out [400, 464), lse [500, 508), scratch [600, 608).
        void Backward(DeviceSpan<float> dq, int dqStride, DeviceSpan<float> dk, int dkStride, DeviceSpan<float> dv, int dvStride, DeviceSpan<float> scratch,
            DeviceSpan<float> dout = default, DeviceSpan<float> output = default) =>
            AttentionBackward.Launch(Device, dq, dqStride, dk, dkStride, dv, dvStride, dout.Length == 0 ? s.Slice(300) : dout, 16,
                s.Slice(2000), 16, s.Slice(3000), 16, s.Slice(3500), 16, output.Length == 0 ? s.Slice(400) : output, 16, s.Slice(500), scratch,
                default, default, default, 1, 4, 4, 2, 8, false, 1f);
        Assert.That(() => Backward(s, 16, s.Slice(100), 16, s.Slice(200), 16, s.Slice(600, 7)),
            Throws.ArgumentException.With.Message.Contains("scratch"));
        Assert.That(() => Backward(s, 16, s, 16, s.Slice(200), 16, s.Slice(600)),
            Throws.ArgumentException.With.Message.Contains("different buffers"));
        Assert.That(() => Backward(s, 16, s.Slice(100), 12, s.Slice(200), 16, s.Slice(600)),
            Throws.ArgumentException.With.Message.Contains("row stride of dk"));
        Assert.That(() => Backward(s, 16, s.Slice(100), 16, s.Slice(200, 100), 64, s.Slice(600)),
            Throws.ArgumentException.With.Message.Contains("dv [B, Tk"));
        Assert.That(() => Backward(s, 16, s.Slice(100), 16, s.Slice(3010), 16, s.Slice(600)),
            Throws.ArgumentException.With.Message.Contains("must not alias"), "dv overlapping k");
        Assert.That(() => Backward(s, 16, s.Slice(100), 16, s.Slice(200), 16, s.Slice(600), output: s.Slice(30)),
            Throws.ArgumentException.With.Message.Contains("must not alias"), "dq overlapping out");
        Assert.DoesNotThrow(() => Backward(s.Slice(700), 48, s.Slice(716), 48, s.Slice(732), 48, s.Slice(600)),
            "dq, dk, dv as the column slices of one [rows, 3A] buffer (GPT-2's dqkv)");
        Assert.DoesNotThrow(() => Forward(s, 16, s.Slice(1000), s.Slice(2000), 16, s.Slice(3000), 16, batch: 0),
            "an empty batch launches nothing");
    }
}

/// <summary><see cref="T5RelativeBuckets"/> (the host side of the kernels' bias) against <see cref="RelativePositionOps.Bias"/>.</summary>
public sealed class T5KernelRelativeBucketsTests
{
    [TestCase(1, 1, true, 32, 128)]
    [TestCase(5, 9, true, 32, 128)]
    [TestCase(70, 70, true, 32, 128)]
    [TestCase(200, 200, true, 32, 20)]   // past max distance: the last bucket of each half
    [TestCase(70, 70, false, 32, 128)]
    [TestCase(33, 200, false, 16, 40)]
    public void BucketsRebuildTheCpuBiasPlane(int queryLength, int keyLength, bool bidirectional, int numBuckets, int maxDistance)
    {
        const int heads = 3;
        var table = new float[numBuckets * heads];
        for (int i = 0; i < table.Length; i++) table[i] = i + 0.5f;  // distinct per (bucket, head)
        var expected = new float[heads * queryLength * keyLength];
        RelativePositionOps.Bias<float>(expected, table, heads, queryLength, keyLength, bidirectional, numBuckets, maxDistance);

        var buckets = new int[T5RelativeBuckets.Length(queryLength, keyLength) + 2];
        Array.Fill(buckets, -7);
        T5RelativeBuckets.Compute(queryLength, keyLength, bidirectional, numBuckets, maxDistance, buckets);
        Assert.That(buckets[^2..], Is.All.EqualTo(-7), "entries past Tq + Tk − 1 are left alone");
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < queryLength; i++)
                for (int j = 0; j < keyLength; j++)
                {
                    float actual = table[buckets[j - i + queryLength - 1] * heads + h];
                    Assert.That(actual, Is.EqualTo(expected[(h * queryLength + i) * keyLength + j]), $"h {h}, i {i}, j {j}");
                }
    }

    [Test]
    public void ComputeRejectsAShortSpan() =>
        Assert.That(() => T5RelativeBuckets.Compute(4, 5, true, 32, 128, new int[7]), Throws.ArgumentException.With.Message.Contains("need 8 entries"));
}

using System.Numerics.Tensors;
using NUnit.Framework.Constraints;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Llama;
using SoftPrompt.Tests.Emulation;
using SoftPrompt.Tests.Llama;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// The Llama-specific kernels against their CPU ops: kernels/rope.cu vs Cpu/RopeOps and kernels/grouped_query.cu vs
/// Cpu/GroupedQueryOps bit for bit (the same roundings in the same order: copies, and products and sums that the
/// kernels keep from being contracted into FMAs); kernels/activation.cu (SwiGLU) vs Cpu/SwiGluOps to expf's last bits.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class LlamaKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    // ── RoPE ──

    // Random tables (not rotations, but the op is defined for any table) with more positions than the sequence uses,
    // so a wrong row stride of the table shows.
    [TestCase(1, 1, 1, 2, 1f, 0)]          // the smallest: one pair
    [TestCase(2, 5, 3, 6, 1f, 1)]          // odd head count, odd half, misaligned
    [TestCase(3, 7, 5, 2, 0.5f, 0)]        // headSize 2
    [TestCase(1, 1, 7, 128, 0.0883883f, 3)] // sequence 1, 1/√128
    [TestCase(2, 33, 4, 64, 0.125f, 0)]     // Llama-like query: 4224 pairs, not a multiple of the block
    [TestCase(2, 37, 3, 34, 1f, 2)]
    public void RopeMatchesTheCpuOpBitForBit(int batch, int sequence, int heads, int headSize, float scale, int offset)
    {
        int n = batch * sequence * heads * headSize, table = (sequence + 3) * (headSize / 2);
        float[] cos = RandomFloats(table, 1), sin = RandomFloats(table, 2), x = RandomFloats(n, 3, -4f, 4f), dy = RandomFloats(n, 4, -4f, 4f);
        float[] y = (float[])x.Clone(), dx = (float[])dy.Clone();
        RopeOps.Forward<float>(y, cos, sin, batch, sequence, heads, headSize, scale);
        RopeOps.Backward<float>(dx, cos, sin, batch, sequence, heads, headSize, scale);

        using var dCos = Put(cos, offset);
        using var dSin = Put(sin, offset);
        using var dX = Put(x, offset);
        using var dDy = Put(dy, offset);
        RopeForward.Launch(Device, dX.Span, dCos.Span, dSin.Span, batch, sequence, heads, headSize, scale);
        AssertBitEqual(dX.Read(), y, "forward");
        RopeBackward.Launch(Device, dDy.Span, dCos.Span, dSin.Span, batch, sequence, heads, headSize, scale);
        AssertBitEqual(dDy.Read(), dx, "backward");
    }

    // bf16 precision: attention's q/k in the full layout, gathered from fp32 shared rows (a row index with repeats, as
    // shared prompt rows give, and out of order) and rotated in fp32, each value rounded to nearest even once —
    // RopeOps.Forward on the gathered rows, then rounded, bit for bit. Random tables, as above.
    [TestCase(1, 1, 1, 2, 1f, 0)]
    [TestCase(2, 5, 3, 6, 1f, 1)]            // odd half, misaligned
    [TestCase(1, 1, 7, 128, 0.0883883f, 3)]  // sequence 1, 1/√128
    [TestCase(2, 33, 4, 64, 0.125f, 0)]      // Llama-like query, not a multiple of the block
    public void RopeGatherBf16RoundsTheFp32RotationOfTheGatheredRowsOnce(int batch, int sequence, int heads, int headSize, float scale, int offset)
    {
        int rows = batch * sequence, width = heads * headSize, sourceRows = sequence + 2, table = (sequence + 3) * (headSize / 2);
        float[] cos = RandomFloats(table, 1), sin = RandomFloats(table, 2), x = RandomFloats(sourceRows * width, 3, -4f, 4f);
        var random = new Random(rows);
        int[] rowIndex = [.. Enumerable.Range(0, rows).Select(r => r % 3 == 0 ? 0 : random.Next(sourceRows))];
        var rotated = new float[rows * width];
        for (int r = 0; r < rows; r++) x.AsSpan(rowIndex[r] * width, width).CopyTo(rotated.AsSpan(r * width));
        RopeOps.Forward<float>(rotated, cos, sin, batch, sequence, heads, headSize, scale);
        var expected = new ushort[rotated.Length];
        ElementConversion.SingleToBFloat16(rotated, expected);

        using var dCos = Put(cos, offset);
        using var dSin = Put(sin, offset);
        using var dX = Put(x, offset);
        using var dIndex = Put(rowIndex);
        using var dY = Put(Enumerable.Repeat((ushort)0xffff, rotated.Length).ToArray(), offset);
        RopeGatherBf16.Launch(Device, dY.Span, dX.Span, dIndex.Span, dCos.Span, dSin.Span, batch, sequence, heads, headSize, scale);
        var actual = dY.Read();
        for (int i = 0; i < actual.Length; i++)
            Assert.That(actual[i], Is.EqualTo(expected[i]), $"element {i}: 0x{actual[i]:x4}, expected 0x{expected[i]:x4} (fp32 {rotated[i]:R})");
    }

    // Real Llama-3 tables (θ = 500000, rope_scaling "llama3" factor 8, all three bands of the wavelength adjustment),
    // positions up to 299 so the angles are large. The query is rotated with attention's 1/√hd folded in: that must be
    // bit-identical to what the CPU engine does (rotate, then multiply by the scale), so folding changes nothing.
    [Test]
    public void RopeWithLlama3TablesMatchesTheCpuEngineSteps()
    {
        var config = new LlamaConfig(VocabSize: 128, Embedding: 256, Layers: 1, Heads: 4, KeyValueHeads: 2, HeadSize: 64, Intermediate: 512,
            MaxPositions: 512, RmsNormEpsilon: 1e-5, RopeTheta: 500000, RopeScaling: new LlamaRopeScaling(LlamaRopeScaling.Llama3, 8, 1, 4, 8192),
            TiedEmbeddings: true);
        var (cos, sin) = LlamaRope.Tables<float>(config.InverseFrequencies<float>(), config.MaxPositions);
        const int batch = 2, sequence = 300;
        int hd = config.HeadSize, width = config.AttentionSize, n = batch * sequence * width;
        float scale = 1f / MathF.Sqrt(hd);
        float[] query = RandomFloats(n, 5, -3f, 3f), gradient = RandomFloats(n, 6, -3f, 3f);

        float[] expected = (float[])query.Clone();
        RopeOps.Forward<float>(expected, cos, sin, batch, sequence, config.Heads, hd);
        TensorPrimitives.Multiply(expected, scale, expected);
        float[] expectedGradient = (float[])gradient.Clone();
        RopeOps.Backward<float>(expectedGradient, cos, sin, batch, sequence, config.Heads, hd);
        TensorPrimitives.Multiply(expectedGradient, scale, expectedGradient);

        using var dCos = Put(cos);
        using var dSin = Put(sin);
        using var dQuery = Put(query);
        using var dGradient = Put(gradient);
        RopeForward.Launch(Device, dQuery.Span, dCos.Span, dSin.Span, batch, sequence, config.Heads, hd, scale);
        float[] actual = dQuery.Read();
        AssertBitEqual(actual, expected, "query forward");
        float[] positionZero = query.AsSpan(0, width).ToArray();
        TensorPrimitives.Multiply(positionZero, scale, positionZero);
        AssertBitEqual(actual.AsSpan(0, width), positionZero, "position 0 (cos 1, sin 0) is only scaled");
        RopeBackward.Launch(Device, dGradient.Span, dCos.Span, dSin.Span, batch, sequence, config.Heads, hd, scale);
        AssertBitEqual(dGradient.Read(), expectedGradient, "query backward");
    }

    // Rᵀ(t)·R(t) = I, so backward∘forward with the same scale is scale²·x — up to the tables' rounding (cos² + sin² is 1
    // only to a few ulps) and the products' roundings: a few 1e-7 of the inputs' size.
    [TestCase(1f)]
    [TestCase(0.5f)]
    public void RopeBackwardAfterForwardIsScaleSquaredTimesIdentity(float scale)
    {
        var config = LlamaTestModels.TinyConfig();
        const int batch = 3, sequence = 17, heads = 5;
        int hd = config.HeadSize, n = batch * sequence * heads * hd;
        var (cos, sin) = LlamaRope.Tables<float>(config.InverseFrequencies<float>(), sequence);
        float[] x = RandomFloats(n, 7);
        using var dCos = Put(cos);
        using var dSin = Put(sin);
        using var dX = Put(x, 1);
        RopeForward.Launch(Device, dX.Span, dCos.Span, dSin.Span, batch, sequence, heads, hd, scale);
        float[] rotated = dX.Read();
        Assert.That(rotated.Zip(x, (a, b) => Math.Abs(a - scale * b)).Max(), Is.GreaterThan(0.1f), "later positions are rotated");
        RopeBackward.Launch(Device, dX.Span, dCos.Span, dSin.Span, batch, sequence, heads, hd, scale);
        AssertClose(dX.Read(), x.Select(v => scale * scale * v).ToArray(), 1e-6, 1e-6, "Rᵀ·R·x·scale²");
    }

    // ── SwiGLU ──

    // Gate values over silu's range plus the extremes: exp(±100) overflows / underflows (σ = 0 or 1 exactly), 0 is exact.
    private static float[] Gates(int n, int seed)
    {
        float[] gate = RandomFloats(n, seed, -8f, 8f);
        float[] extremes = [0f, -100f, 100f, -30f, 30f, -1.2785f];
        for (int i = 0; i < n; i += 13) gate[i] = extremes[i / 13 % extremes.Length];
        return gate;
    }

    // Same formula and order as the CPU op; only expf may differ. In the emulator (libm's expf, which MathF.Exp also
    // calls on Linux) the results come out bit-equal; CUDA's expf is within 2 ulp, and that error passes through σ into
    // each product (relative 1e-6 ≈ 8 ulp). dGate's factor 1 + g·(1 − σ) cancels to 0 near g ≈ −1.2785, where
    // the relative error grows; the absolute 1e-7 (values are O(1)) covers it.
    private static void AssertSwiGluClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, string what) =>
        AssertClose(actual, expected, 1e-6, 1e-7, what);

    [TestCase(1, 0)]
    [TestCase(3, 0)]
    [TestCase(255, 0)]
    [TestCase(257, 0)]
    [TestCase(4099, 0)]   // float4 body + 3-element tail
    [TestCase(4099, 1)]   // misaligned: scalar
    [TestCase(1030, 2)]
    public void SwiGluMatchesTheCpuOp(int n, int offset)
    {
        float[] gate = Gates(n, n), up = RandomFloats(n, n + 1, -2f, 2f), dy = RandomFloats(n, n + 2);
        var y = new float[n];
        var dGate = new float[n];
        var dUp = new float[n];
        SwiGluOps.Forward<float>(y, gate, up);
        SwiGluOps.Backward<float>(dGate, dUp, dy, gate, up);

        using var dG = Put(gate, offset);
        using var dU = Put(up, offset);
        using var dDy = Put(dy, offset);
        using var dY = Put(RandomFloats(n, 5), offset);
        using var dDGate = Put(RandomFloats(n, 6), offset);
        using var dDUp = Put(RandomFloats(n, 7), offset);
        SwiGluForward.Launch(Device, dY.Span, dG.Span, dU.Span, n);
        AssertSwiGluClose(dY.Read(), y, "y");
        SwiGluBackward.Launch(Device, dDGate.Span, dDUp.Span, dDy.Span, dG.Span, dU.Span, n);
        AssertSwiGluClose(dDGate.Read(), dGate, "dGate");
        AssertSwiGluClose(dDUp.Read(), dUp, "dUp");
    }

    // The engine's in-place forms (y over gate, dGate over dy), on spans longer than n: nothing past n is touched.
    [TestCase(1001, 0)]
    [TestCase(1001, 3)]
    public void SwiGluRunsInPlaceAndStopsAtN(int n, int offset)
    {
        const int extra = 9;
        float[] gate = Gates(n + extra, 11), up = RandomFloats(n + extra, 12, -2f, 2f), dy = RandomFloats(n + extra, 13);
        var y = new float[n];
        var dGate = new float[n];
        var dUp = new float[n];
        SwiGluOps.Forward<float>(y, gate.AsSpan(0, n), up.AsSpan(0, n));
        SwiGluOps.Backward<float>(dGate, dUp, dy.AsSpan(0, n), gate.AsSpan(0, n), up.AsSpan(0, n));

        using var gateThenY = Put(gate, offset);
        using var dU = Put(up, offset);
        SwiGluForward.Launch(Device, gateThenY.Span, gateThenY.Span, dU.Span, n);
        float[] result = gateThenY.Read();
        AssertSwiGluClose(result.AsSpan(0, n), y, "y (in place over gate)");
        AssertBitEqual(result.AsSpan(n), gate.AsSpan(n), "gate past n");

        using var dG = Put(gate, offset);
        using var dyThenDGate = Put(dy, offset);
        using var dDUp = Zeros<float>(n + extra, offset);
        SwiGluBackward.Launch(Device, dyThenDGate.Span, dDUp.Span, dyThenDGate.Span, dG.Span, dU.Span, n);
        result = dyThenDGate.Read();
        AssertSwiGluClose(result.AsSpan(0, n), dGate, "dGate (in place over dy)");
        AssertBitEqual(result.AsSpan(n), dy.AsSpan(n), "dy past n");
        AssertSwiGluClose(dDUp.Read().AsSpan(0, n), dUp, "dUp");
        AssertBitEqual(dDUp.Read().AsSpan(n), new float[extra], "dUp past n");
    }

    // ── grouped-query heads ──

    // Magnitudes from 1e-3 to 1e3 (so the order of the adds matters to the last bit) and some −0s (a group of −0s
    // sums to +0 from the +0 start).
    private static float[] Spread(int n, int seed)
    {
        float[] x = RandomFloats(n, seed);
        var rng = new Random(seed + 1);
        for (int i = 0; i < n; i++) x[i] *= MathF.Pow(10f, rng.Next(-3, 4));
        for (int i = 5; i < n; i += 17) x[i] = -0f;
        return x;
    }

    [TestCase(1, 1, 1, 2, 0)]      // plain multi-head, one row, headSize 2
    [TestCase(3, 8, 2, 64, 0)]     // float4 path
    [TestCase(3, 8, 2, 64, 1)]     // misaligned: scalar
    [TestCase(5, 6, 1, 6, 0)]      // multi-query; headSize % 4 != 0
    [TestCase(2, 15, 5, 3, 0)]     // odd head counts, odd headSize
    [TestCase(1, 3, 3, 2, 2)]
    [TestCase(7, 32, 8, 128, 0)]   // Llama-3-8B's heads
    [TestCase(9, 12, 4, 20, 3)]
    public void GroupedQueryHeadsMatchTheCpuOpBitForBit(int rows, int heads, int keyValueHeads, int headSize, int offset)
    {
        int wideCount = rows * heads * headSize, narrowCount = rows * keyValueHeads * headSize;
        float[] narrow = Spread(narrowCount, 1), wideGradient = Spread(wideCount, 2);
        var wide = new float[wideCount];
        var narrowGradient = new float[narrowCount];
        GroupedQueryOps.Repeat<float>(wide, narrow, rows, heads, keyValueHeads, headSize);
        GroupedQueryOps.Sum<float>(narrowGradient, wideGradient, rows, heads, keyValueHeads, headSize);

        using var dNarrow = Put(narrow, offset);
        using var dWide = Put(RandomFloats(wideCount, 3), offset);               // overwritten
        RepeatKeyValueHeads.Launch(Device, dWide.Span, dNarrow.Span, rows, heads, keyValueHeads, headSize);
        AssertBitEqual(dWide.Read(), wide, "repeat_kv_heads");

        // bf16 k/v (bf16 precision at head sizes without tensor-core attention): the same copy of the bf16 bits.
        ushort[] narrow16 = [.. narrow.Select(ElementConversion.SingleToBFloat16)], wide16 = [.. wide.Select(ElementConversion.SingleToBFloat16)];
        using var dNarrow16 = Put(narrow16, offset);
        using var dWide16 = Put(Enumerable.Repeat((ushort)0xffff, wideCount).ToArray(), offset);
        RepeatKeyValueHeads.Launch(Device, dWide16.Span, dNarrow16.Span, rows, heads, keyValueHeads, headSize);
        Assert.That(dWide16.Read(), Is.EqualTo(wide16), "repeat_kv_heads_bf16");

        using var dWideGradient = Put(wideGradient, offset);
        using var dNarrowGradient = Put(RandomFloats(narrowCount, 4), offset);   // overwritten, not accumulated into
        SumKeyValueGroups.Launch(Device, dNarrowGradient.Span, dWideGradient.Span, rows, heads, keyValueHeads, headSize);
        AssertBitEqual(dNarrowGradient.Read(), narrowGradient, "sum_kv_groups");
    }

    // The CPU op is what the engine's helpers were: each query head's copy comes from kv head h / group, and the sum
    // over a group of copies of one value v is v added group times.
    [Test]
    public void GroupedQueryOpsRepeatEachKeyValueHeadOverItsGroup()
    {
        const int rows = 2, heads = 6, keyValueHeads = 2, headSize = 3;
        float[] narrow = Enumerable.Range(1, rows * keyValueHeads * headSize).Select(i => (float)i).ToArray();
        var wide = new float[rows * heads * headSize];
        GroupedQueryOps.Repeat<float>(wide, narrow, rows, heads, keyValueHeads, headSize);
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
                Assert.That(wide.AsSpan((r * heads + h) * headSize, headSize).ToArray(),
                    Is.EqualTo(narrow.AsSpan((r * keyValueHeads + h / 3) * headSize, headSize).ToArray()), $"row {r}, head {h}");
        var sum = new float[narrow.Length];
        GroupedQueryOps.Sum<float>(sum, wide, rows, heads, keyValueHeads, headSize);
        Assert.That(sum, Is.EqualTo(narrow.Select(v => 3 * v).ToArray()));
    }

    // ── launch checks ──

    // An ArgumentException whose message names the kernel and whose ParamName is the offending argument.
    private static IResolveConstraint Rejected(string kernel, string parameter) =>
        Throws.ArgumentException.With.Message.Contains(kernel).And.Property(nameof(ArgumentException.ParamName)).EqualTo(parameter);

    [Test]
    public void LaunchersRejectShortSpansAndBadShapesNamingTheKernel()
    {
        using var x = Zeros<float>(2 * 3 * 4 * 8);
        using var table = Zeros<float>(3 * 4);
        using var shortTable = Zeros<float>(3 * 4 - 1);
        Assert.That(() => RopeForward.Launch(Device, x.Span, shortTable.Span, table.Span, 2, 3, 4, 8, 1f), Rejected("rope_forward", "cos"));
        Assert.That(() => RopeBackward.Launch(Device, x.Span, table.Span, shortTable.Span, 2, 3, 4, 8, 1f), Rejected("rope_backward", "sin"));
        Assert.That(() => RopeForward.Launch(Device, x.Span, table.Span, table.Span, 2, 3, 5, 8, 1f), Rejected("rope_forward", "x"));
        Assert.That(() => RopeForward.Launch(Device, x.Span, table.Span, table.Span, 2, 3, 4, 7, 1f), Rejected("rope_forward", "headSize"));
        using var index = Zeros<int>(2 * 3);
        using var shortBf16 = Zeros<ushort>(2 * 3 * 4 * 8 - 1);
        Assert.That(() => RopeGatherBf16.Launch(Device, shortBf16.Span, x.Span, index.Span, table.Span, table.Span, 2, 3, 4, 8, 1f), Rejected("rope_gather_bf16", "y"));
        using var bf16 = Zeros<ushort>(2 * 3 * 4 * 8);
        Assert.That(() => RopeGatherBf16.Launch(Device, bf16.Span, x.Span, index.Span.Slice(0, 5), table.Span, table.Span, 2, 3, 4, 8, 1f), Rejected("rope_gather_bf16", "rowIndex"));
        Assert.That(() => RopeGatherBf16.Launch(Device, bf16.Span, x.Span, index.Span, table.Span, shortTable.Span, 2, 3, 4, 8, 1f), Rejected("rope_gather_bf16", "sin"));
        var overX = new DeviceSpan<ushort>(x.Span.Address, 2 * 3 * 4 * 8);
        Assert.That(() => RopeGatherBf16.Launch(Device, overX, x.Span, index.Span, table.Span, table.Span, 2, 3, 4, 8, 1f), Rejected("rope_gather_bf16", "y"));

        using var a = Zeros<float>(8);
        using var b = Zeros<float>(8);
        using var shortOne = Zeros<float>(7);
        Assert.That(() => SwiGluForward.Launch(Device, a.Span, b.Span, shortOne.Span, 8), Rejected("swiglu_forward", "up"));
        Assert.That(() => SwiGluBackward.Launch(Device, a.Span, b.Span, shortOne.Span, a.Span, a.Span, 8), Rejected("swiglu_backward", "dy"));
        Assert.That(() => SwiGluBackward.Launch(Device, a.Span, a.Span, b.Span, b.Span, b.Span, 8), Rejected("swiglu_backward", "dUp"));

        using var wide = Zeros<float>(2 * 6 * 4);
        using var narrow = Zeros<float>(2 * 2 * 4);
        Assert.That(() => RepeatKeyValueHeads.Launch(Device, wide.Span, narrow.Span, 2, 6, 3, 4), Rejected("repeat_kv_heads", "narrow"));
        Assert.That(() => RepeatKeyValueHeads.Launch(Device, wide.Span, narrow.Span, 2, 6, 4, 4), Rejected("repeat_kv_heads", "keyValueHeads"));
        using var wide16 = Zeros<ushort>(2 * 6 * 4);
        using var narrow16 = Zeros<ushort>(2 * 2 * 4);
        Assert.That(() => RepeatKeyValueHeads.Launch(Device, wide16.Span, narrow16.Span, 2, 6, 3, 4), Rejected("repeat_kv_heads_bf16", "narrow"));
        Assert.That(() => SumKeyValueGroups.Launch(Device, narrow.Span, wide.Span, 3, 6, 2, 4), Rejected("sum_kv_groups", "narrow"));
        Assert.That(() => SumKeyValueGroups.Launch(Device, narrow.Span, shortOne.Span, 2, 6, 2, 4), Rejected("sum_kv_groups", "wide"));
    }
}

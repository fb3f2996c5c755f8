using SoftPrompt.Checkpoints;
using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>kernels/loss.cu against Cpu/CrossEntropyOps, and the deterministic loss sum.</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class LossKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    //       rows      V   gradientScale
    [TestCase(1, 1, 1f)]
    [TestCase(5, 97, 0f)]
    [TestCase(5, 97, 1f / 7)]
    [TestCase(3, 1000, 0.5f)]
    [TestCase(1, 4099, -2f)]
    [TestCase(2, 50257, 0f)]
    [TestCase(2, 50257, 1f / 3)]
    public void CrossEntropyMatchesTheCpuOp(int rows, int vocab, float gradientScale)
    {
        float[] logits = RandomFloats(rows * vocab, vocab + rows, -8f, 8f);
        int[] targets = RandomInts(rows, 5, vocab);
        if (rows > 1) logits[vocab + 1] = 60f;              // a dominant logit: the online max must rescale
        if (rows > 2) targets[2] = vocab - 1;               // the target in a row's scalar tail
        float[] expected = (float[])logits.Clone();
        var expectedLoss = new float[rows];
        CrossEntropyOps.ForwardBackward<float>(expected, expectedLoss, targets, rows, vocab, gradientScale);

        using var dLogits = Put(logits);
        using var dLoss = Zeros<float>(rows);
        using var dTargets = Put(targets);
        CrossEntropy.Launch(Device, dLogits.Span, dLoss.Span, dTargets.Span, rows, vocab, vocab, gradientScale);
        AssertClose(dLoss.Read(), expectedLoss, 1e-5, 2e-6, "rowLoss");
        if (gradientScale == 0f) AssertBitEqual(dLogits.Read(), logits, "logits (untouched without a gradient)");
        else AssertClose(dLogits.Read(), expected, 1e-5, 1e-9, "dlogits");
    }

    [Test]
    public void CrossEntropyOfEqualLogitsIsLogV()
    {
        const int rows = 2, vocab = 1003;
        using var dLogits = Put(new float[rows * vocab]);
        using var dLoss = Zeros<float>(rows);
        using var dTargets = Put(new[] { 0, vocab - 1 });
        CrossEntropy.Launch(Device, dLogits.Span, dLoss.Span, dTargets.Span, rows, vocab, vocab, 1f);
        Assert.That(dLoss.Read(), Is.EqualTo(new[] { MathF.Log(vocab), MathF.Log(vocab) }).Within(2e-6));
        float[] g = dLogits.Read();
        Assert.That(g[1], Is.EqualTo(1f / vocab).Within(1e-9));
        Assert.That(g[0], Is.EqualTo(1f / vocab - 1f).Within(1e-6));
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(1000)]
    [TestCase(5003)]
    public void SumLossIsScaledAndDeterministic(int n)
    {
        float[] loss = RandomFloats(n, n, 0f, 10f);
        const float scale = 1f / 3;
        double expected = 0;
        foreach (float v in loss) expected += v;
        expected *= scale;

        using var dLoss = Put(loss);
        using var result = Put(new[] { float.NaN });
        SumLoss.Launch(Device, result.Span, dLoss.Span, scale);
        float first = result.Read()[0];
        Assert.That(first, Is.EqualTo(expected).Within(1e-5 * Math.Max(1, Math.Abs(expected))));
        SumLoss.Launch(Device, result.Span, dLoss.Span, scale);
        AssertBitEqual(result.Read(), [first], "second run");
    }

    //        rows  vocab
    [TestCase(1, 1)]
    [TestCase(7, 97)]
    [TestCase(3, 257)]
    [TestCase(2, 50257)]
    public void RowArgmaxIsIndexOfMax(int rows, int vocab)
    {
        float[] logits = RandomFloats(rows * vocab, 41, -5f, 5f);
        // Ties and NaN: row 0 has its maximum twice (the first must win); row 1, when there is one, a NaN after its maximum.
        if (vocab > 3) { logits[vocab - 1] = 9f; logits[1] = 9f; }
        if (rows > 1 && vocab > 3) { logits[vocab + 0] = 20f; logits[vocab + 2] = float.NaN; }
        var expected = new int[rows];
        for (int r = 0; r < rows; r++) expected[r] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(logits.AsSpan(r * vocab, vocab));
        if (vocab > 3) Assert.That(expected[0], Is.EqualTo(1), "the reference takes the first of equal maxima");
        using var dLogits = Put(logits);
        using var dIndices = Zeros<int>(rows);
        RowArgmax.Launch(Device, dIndices.Span, dLogits.Span, rows, vocab, vocab);
        Assert.That(dIndices.Read(), Is.EqualTo(expected));
    }

    // Padded logit rows, as the LM head keeps them: stride > V, the padding full of NaN and huge values that would win the
    // max (and poison the softmax sum) if a kernel read it.
    private static float[] PaddedRows(float[] dense, int rows, int vocab, int stride)
    {
        var padded = new float[rows * stride];
        for (int r = 0; r < rows; r++)
        {
            dense.AsSpan(r * vocab, vocab).CopyTo(padded.AsSpan(r * stride));
            for (int v = vocab; v < stride; v++) padded[r * stride + v] = (v & 1) == 0 ? float.NaN : 3e38f;
        }
        return padded;
    }

    private static float[] UsedColumns(float[] padded, int rows, int vocab, int stride)
    {
        var dense = new float[rows * vocab];
        for (int r = 0; r < rows; r++) padded.AsSpan(r * stride, vocab).CopyTo(dense.AsSpan(r * vocab));
        return dense;
    }

    //       rows      V  stride  offset  gradientScale    (offset: where the rows start, in floats; 1 misaligns every row)
    [TestCase(1, 1, 8, 0, 1f)]
    [TestCase(5, 97, 104, 0, 1f / 7)]
    [TestCase(5, 97, 101, 1, 0.5f)]
    [TestCase(3, 1000, 1003, 0, -2f)]
    [TestCase(3, 1000, 1008, 0, 0f)]
    [TestCase(2, 50257, 50304, 0, 1f / 3)]
    public void CrossEntropyReadsOnlyTheVocabularyOfPaddedRowsAndWritesItsGradientInFp32OrBf16(int rows, int vocab, int stride, int offset, float gradientScale)
    {
        float[] dense = RandomFloats(rows * vocab, vocab + 3 * rows, -8f, 8f);
        int[] targets = RandomInts(rows, 11, vocab);
        if (rows > 1) dense[vocab + 1] = 60f;
        if (rows > 2) targets[2] = vocab - 1;
        float[] expected = (float[])dense.Clone();
        var expectedLoss = new float[rows];
        CrossEntropyOps.ForwardBackward<float>(expected, expectedLoss, targets, rows, vocab, gradientScale);
        float[] padded = PaddedRows(dense, rows, vocab, stride);
        using var dTargets = Put(targets);

        // fp32, in place: the padding stays as it was.
        using var dLogits = Put(padded, offset);
        using var dLoss = Zeros<float>(rows);
        CrossEntropy.Launch(Device, dLogits.Span, dLoss.Span, dTargets.Span, rows, vocab, stride, gradientScale);
        float[] inPlace = dLogits.Read();
        float[] loss = dLoss.Read();
        AssertClose(loss, expectedLoss, 1e-5, 2e-6, "rowLoss");
        AssertClose(UsedColumns(inPlace, rows, vocab, stride), gradientScale == 0f ? dense : expected, 1e-5, 1e-9, "dlogits");
        AssertBitEqual(PaddedRows(UsedColumns(inPlace, rows, vocab, stride), rows, vocab, stride), inPlace, "logits' padding (fp32 path)");

        // bf16 out: the logits untouched, the gradient bf16(the fp32 path's gradient) bit for bit, its padding 0 with a
        // gradient (the head's bf16 GEMM runs over it) and untouched without one.
        const ushort Untouched = 0xABCD;
        var fill = new ushort[rows * stride];
        Array.Fill(fill, Untouched);
        using var dLogits2 = Put(padded, offset);
        using var dLoss2 = Zeros<float>(rows);
        using var dGradient = Put(fill, offset);
        CrossEntropy.Launch(Device, dLogits2.Span, dLoss2.Span, dTargets.Span, rows, vocab, stride, gradientScale, dGradient.Span);
        AssertBitEqual(dLoss2.Read(), loss, "rowLoss (bf16 gradient)");
        AssertBitEqual(dLogits2.Read(), padded, "logits (untouched when the gradient goes to bf16)");
        ushort[] gradient = dGradient.Read();
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < stride; v++)
            {
                int i = r * stride + v;
                ushort want = gradientScale == 0f ? Untouched : v >= vocab ? (ushort)0 : ElementConversion.SingleToBFloat16(inPlace[i]);
                if (gradient[i] != want)
                    Assert.Fail($"bf16 gradient [{r}, {v}] (V {vocab}, stride {stride}): 0x{gradient[i]:x4}, expected 0x{want:x4}" +
                        (gradientScale == 0f ? " (no gradient without a scale)." : v >= vocab ? " (the padding's gradient is 0)." : $" = bf16({inPlace[i]:R})."));
            }
    }

    //        rows  vocab  stride
    [TestCase(1, 1, 8)]
    [TestCase(7, 97, 104)]
    [TestCase(3, 257, 259)]
    [TestCase(2, 50257, 50264)]
    public void RowArgmaxReadsOnlyTheVocabularyOfPaddedRows(int rows, int vocab, int stride)
    {
        float[] dense = RandomFloats(rows * vocab, 43, -5f, 5f);
        if (vocab > 3) { dense[vocab - 1] = 9f; dense[1] = 9f; }
        var expected = new int[rows];
        for (int r = 0; r < rows; r++) expected[r] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(dense.AsSpan(r * vocab, vocab));
        using var dLogits = Put(PaddedRows(dense, rows, vocab, stride));
        using var dIndices = Zeros<int>(rows);
        RowArgmax.Launch(Device, dIndices.Span, dLogits.Span, rows, vocab, stride);
        Assert.That(dIndices.Read(), Is.EqualTo(expected));
    }

    //       count  channels  sourceRows  scale        indexed
    [TestCase(1, 1, 1, 1f, true)]
    [TestCase(9, 33, 5, 1f, true)]
    [TestCase(9, 33, 5, 0.17677669f, true)]
    [TestCase(7, 64, 7, 0.125f, false)]
    public void HeadGatherBf16IsTheRoundedScaledRow(int count, int channels, int sourceRows, float scale, bool indexed)
    {
        float[] source = RandomFloats(sourceRows * channels, count + channels, -4f, 4f);
        int[] rows = indexed ? RandomInts(count, 3, sourceRows) : [.. Enumerable.Range(0, count)];
        var expected = new ushort[count * channels];
        for (int i = 0; i < count; i++)
            for (int c = 0; c < channels; c++) expected[i * channels + c] = ElementConversion.SingleToBFloat16(scale * source[rows[i] * channels + c]);
        using var dSource = Put(source);
        using var dRows = Put(rows);
        using var dOut = Zeros<ushort>(count * channels);
        HeadGatherBf16.Launch(Device, dOut.Span, dSource.Span, indexed ? dRows.Span : default, count, channels, scale);
        Assert.That(dOut.Read(), Is.EqualTo(expected), "bf16(scale · row), rounded to nearest even");
    }
}

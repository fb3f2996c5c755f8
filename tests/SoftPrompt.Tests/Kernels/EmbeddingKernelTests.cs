using SoftPrompt.Cpu;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>kernels/embedding.cu against Cpu/EmbeddingOps: bit-exact (the same one add per element, in the same order).</summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class EmbeddingKernelTests(DeviceKind kind) : KernelTestBase(kind)
{
    private const int Vocab = 50;

    //         B  T  P    C  K  offset
    [TestCase(1, 1, 1, 1, 1, 0)]
    [TestCase(1, 1, 0, 4, 1, 0)]      // no prompt, T = 1
    [TestCase(3, 7, 2, 33, 2, 0)]
    [TestCase(4, 9, 3, 100, 3, 0)]    // float4 path
    [TestCase(4, 9, 3, 100, 3, 1)]    // misaligned rows: scalar path
    [TestCase(2, 5, 5, 3, 2, 0)]      // prompt only
    [TestCase(2, 6, 0, 769, 1, 0)]    // tokens only
    [TestCase(5, 3, 1, 64, 4, 0)]
    public void ForwardSplicesEachRowsPromptBitForBit(int batch, int sequence, int promptLength, int channels, int promptCount, int offset)
    {
        int tokenLength = sequence - promptLength;
        int[] tokens = RandomInts(batch * tokenLength, 1, Vocab);
        int[] promptIndex = RandomInts(batch, 2, promptCount);
        float[] prompts = RandomFloats(promptCount * promptLength * channels, 3);
        float[] wte = RandomFloats(Vocab * channels, 4);
        float[] wpe = RandomFloats((sequence + 2) * channels, 5);  // longer than T rows, as a model's table is
        var expected = new float[batch * sequence * channels];
        EmbeddingOps.Forward<float>(expected, tokens, prompts, promptIndex, wte, wpe, batch, sequence, promptLength, channels);

        using var x = Zeros<float>(expected.Length, offset);
        using var dTokens = Put(tokens);
        using var dPrompts = Put(prompts, offset);
        using var dIndex = Put(promptIndex);
        using var dWte = Put(wte, offset);
        using var dWpe = Put(wpe, offset);
        EmbeddingForward.Launch(Device, x.Span, dTokens.Span, promptLength > 0 ? dPrompts.Span : default, dIndex.Span, dWte.Span, dWpe.Span,
            batch, sequence, promptLength, channels);
        AssertBitEqual(x.Read(), expected, "x");
    }

    //         B  T  P  K    C  accumulate offset
    [TestCase(1, 1, 1, 1, 1, false, 0)]
    [TestCase(7, 6, 3, 4, 33, false, 0)]
    [TestCase(7, 6, 3, 4, 33, true, 0)]
    [TestCase(5, 4, 2, 3, 64, true, 0)]    // float4 path
    [TestCase(5, 4, 2, 3, 64, false, 1)]   // scalar path
    [TestCase(3, 5, 2, 2, 769, true, 0)]
    [TestCase(2, 3, 3, 1, 3, false, 0)]    // T = P
    [TestCase(9, 2, 1, 2, 1100, false, 0)] // more than one column block
    public void PromptGradientSumsTheRowsOfEachPromptInOrder(int batch, int sequence, int promptLength, int promptCount, int channels, bool accumulate, int offset)
    {
        // Unequal usage: prompt 0 takes most rows, the last prompt (when K > 2) none.
        var promptIndex = new int[batch];
        for (int b = 0; b < batch; b++) promptIndex[b] = promptCount == 1 ? 0 : b % 3 == 1 ? 1 : b % 5 == 4 && promptCount > 3 ? 2 : 0;
        float[] dx = RandomFloats(batch * sequence * channels, 11, -3f, 3f);
        float[] initial = RandomFloats(promptCount * promptLength * channels, 12);
        float[] expected = (float[])initial.Clone();
        EmbeddingOps.PromptGradient<float>(expected, dx, promptIndex, batch, sequence, promptLength, promptCount, channels, accumulate);

        using var dPrompts = Put(initial, offset);
        using var dDx = Put(dx, offset);
        using var dIndex = Put(promptIndex);
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, batch, sequence, promptLength, promptCount, channels, accumulate);
        float[] first = dPrompts.Read();
        AssertBitEqual(first, expected, "dPrompts");

        dPrompts.Write(initial);
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, batch, sequence, promptLength, promptCount, channels, accumulate);
        AssertBitEqual(dPrompts.Read(), first, "second run");
    }

    [Test]
    public void PromptGradientAcceptsSpansLongerThanTheShapes()
    {
        const int batch = 3, sequence = 4, promptLength = 2, promptCount = 2, channels = 8;
        int[] promptIndex = [1, 0, 1];
        float[] dx = RandomFloats(batch * sequence * channels + 40, 13);
        float[] initial = RandomFloats(promptCount * promptLength * channels + 24, 14);
        float[] expected = (float[])initial.Clone();
        EmbeddingOps.PromptGradient<float>(expected, dx, promptIndex, batch, sequence, promptLength, promptCount, channels, accumulate: false);

        using var dPrompts = Put(initial);
        using var dDx = Put(dx);
        using var dIndex = Put(new[] { 1, 0, 1, 7, 7 });
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, batch, sequence, promptLength, promptCount, channels, accumulate: false);
        AssertBitEqual(dPrompts.Read(), expected, "dPrompts (tail untouched)");
    }

    //       count  C  rows offset
    [TestCase(1, 1, 1, 0)]
    [TestCase(5, 33, 9, 0)]
    [TestCase(6, 64, 10, 0)]
    [TestCase(6, 64, 10, 1)]
    [TestCase(3, 769, 4, 0)]
    [TestCase(17, 3, 20, 0)]
    public void GatherAndScatterRowsCopyExactly(int count, int channels, int rows, int offset)
    {
        float[] table = RandomFloats(rows * channels, 21);
        float[] packed = RandomFloats(count * channels, 22);
        int[] gatherIndex = RandomInts(count, 23, rows);                          // repeats allowed
        var rng = new Random(24);
        int[] scatterIndex = [.. Enumerable.Range(0, rows).OrderBy(_ => rng.Next()).Take(count)];  // distinct

        var gathered = new float[count * channels];
        for (int i = 0; i < count; i++) table.AsSpan(gatherIndex[i] * channels, channels).CopyTo(gathered.AsSpan(i * channels));
        float[] scattered = (float[])table.Clone();
        for (int i = 0; i < count; i++) packed.AsSpan(i * channels, channels).CopyTo(scattered.AsSpan(scatterIndex[i] * channels));

        using var dTable = Put(table, offset);
        using var dPacked = Put(packed, offset);
        using var dOut = Zeros<float>(count * channels, offset);
        using var dGather = Put(gatherIndex);
        using var dScatter = Put(scatterIndex);
        GatherRows.Launch(Device, dOut.Span, dTable.Span, dGather.Span, count, channels);
        AssertBitEqual(dOut.Read(), gathered, "gathered");
        ScatterRows.Launch(Device, dTable.Span, dPacked.Span, dScatter.Span, count, channels);
        AssertBitEqual(dTable.Read(), scattered, "scattered");
    }

    [Test]
    public void LaunchersRejectSpansShorterThanTheShapes()
    {
        using var small = Zeros<float>(10);
        using var index = Zeros<int>(4);
        var e = Assert.Throws<ArgumentException>(() => GatherRows.Launch(Device, small.Span, small.Span, index.Span, 4, 3));
        Assert.That(e!.Message, Does.Contain(GatherRows.Name).And.Contain("destination"));
        Assert.Throws<ArgumentException>(() => PromptGradient.Launch(Device, small.Span, small.Span, index.Span, 4, 2, 1, 1, 3, false));
    }
}

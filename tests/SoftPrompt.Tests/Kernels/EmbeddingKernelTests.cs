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

    private static int[] Lengths(string lengths) => lengths.Length == 0 ? [] : [.. lengths.Split(',').Select(int.Parse)];

    private static int[] Offsets(int[] lengths)
    {
        var offsets = new int[lengths.Length + 1];
        for (int k = 0; k < lengths.Length; k++) offsets[k + 1] = offsets[k] + lengths[k];
        return offsets;
    }

    //        B  lengths   tokens  C  offset   (lengths "": no prompts at all, as the T5 decoder calls it)
    [TestCase(1, "1", 0, 1, 0)]
    [TestCase(1, "0", 1, 4, 0)]          // an empty prompt, T = 1
    [TestCase(1, "", 1, 4, 0)]           // no prompts
    [TestCase(3, "2,2", 5, 33, 0)]
    [TestCase(4, "3,3,3", 6, 100, 0)]    // float4 path
    [TestCase(4, "3,3,3", 6, 100, 1)]    // misaligned rows: scalar path
    [TestCase(2, "5,5", 0, 3, 0)]        // prompt only
    [TestCase(2, "", 6, 769, 0)]         // tokens only
    [TestCase(5, "1,1,1,1", 2, 64, 0)]
    [TestCase(6, "2,0,5", 3, 64, 0)]     // different lengths: shorter prompts leave zero-token positions at the end
    [TestCase(6, "4,1,3", 2, 33, 1)]     // different lengths, scalar path
    public void ForwardSplicesEachRowsPromptBitForBit(int batch, string lengthList, int tokenLength, int channels, int offset)
    {
        int[] lengths = Lengths(lengthList), offsets = Offsets(lengths);
        int promptCount = Math.Max(1, lengths.Length), sequence = lengths.DefaultIfEmpty(0).Max() + tokenLength;
        int[] tokens = RandomInts(batch * tokenLength, 1, Vocab);
        int[] promptIndex = RandomInts(batch, 2, promptCount);
        float[] prompts = RandomFloats(Math.Max(1, offsets[^1]) * channels, 3);
        float[] wte = RandomFloats(Vocab * channels, 4);
        float[] wpe = RandomFloats((sequence + 2) * channels, 5);  // longer than T rows, as a model's table is
        var expected = new float[batch * sequence * channels];
        EmbeddingOps.Forward<float>(expected, tokens, prompts, promptIndex, lengths.Length == 0 ? [] : offsets, wte, wpe, batch, sequence, tokenLength, channels);

        using var x = Zeros<float>(expected.Length, offset);
        using var dTokens = Put(tokens.Length == 0 ? [0] : tokens);
        using var dPrompts = Put(prompts, offset);
        using var dIndex = Put(promptIndex);
        using var dOffsets = Put(offsets);
        using var dWte = Put(wte, offset);
        using var dWpe = Put(wpe, offset);
        EmbeddingForward.Launch(Device, x.Span, dTokens.Span, dPrompts.Span, dIndex.Span, lengths.Length == 0 ? default : dOffsets.Span, dWte.Span, dWpe.Span,
            batch, sequence, tokenLength, channels);
        AssertBitEqual(x.Read(), expected, "x");
    }

    [Test]
    public void ForwardPutsEachRowsTokensRightAfterItsOwnPrompt()
    {
        // Two prompts of lengths 1 and 3, channels 1, zero positions: x is readable as the spliced sequence itself.
        float[] prompts = [10, 20, 21, 22];
        float[] wte = [.. Enumerable.Range(0, Vocab).Select(i => 100f + i)];
        float[] wpe = new float[5];
        int[] tokens = [1, 2, 3, 4];
        var x = new float[2 * 5];
        EmbeddingOps.Forward<float>(x, tokens, prompts, [1, 0], [0, 1, 4], wte, wpe, batch: 2, sequence: 5, tokenLength: 2, channels: 1);
        Assert.That(x, Is.EqualTo(new float[] { 20, 21, 22, 101, 102, /* row 1: */ 10, 103, 104, 0, 0 }));

        using var dX = Zeros<float>(x.Length);
        using var dTokens = Put(tokens);
        using var dPrompts = Put(prompts);
        using var dIndex = Put(new[] { 1, 0 });
        using var dOffsets = Put(new[] { 0, 1, 4 });
        using var dWte = Put(wte);
        using var dWpe = Put(wpe);
        EmbeddingForward.Launch(Device, dX.Span, dTokens.Span, dPrompts.Span, dIndex.Span, dOffsets.Span, dWte.Span, dWpe.Span, 2, 5, 2, 1);
        AssertBitEqual(dX.Read(), x, "x");
    }

    //        B  T  lengths  C    accumulate offset
    [TestCase(1, 1, "1", 1, false, 0)]
    [TestCase(7, 6, "3,3,3,3", 33, false, 0)]
    [TestCase(7, 6, "3,3,3,3", 33, true, 0)]
    [TestCase(5, 4, "2,2,2", 64, true, 0)]    // float4 path
    [TestCase(5, 4, "2,2,2", 64, false, 1)]   // scalar path
    [TestCase(3, 5, "2,2", 769, true, 0)]
    [TestCase(2, 3, "3", 3, false, 0)]        // T = P
    [TestCase(9, 2, "1,1", 1100, false, 0)]   // more than one column block
    [TestCase(9, 6, "4,1,0,2", 36, false, 0)] // different lengths (one empty)
    [TestCase(9, 6, "4,1,0,2", 36, true, 1)]
    public void PromptGradientSumsTheRowsOfEachPromptInOrder(int batch, int sequence, string lengthList, int channels, bool accumulate, int offset)
    {
        int[] lengths = Lengths(lengthList), offsets = Offsets(lengths);
        int promptCount = lengths.Length;
        // Unequal usage: prompt 0 takes most rows, the last prompt (when K > 2) none.
        var promptIndex = new int[batch];
        for (int b = 0; b < batch; b++) promptIndex[b] = promptCount == 1 ? 0 : b % 3 == 1 ? 1 : b % 5 == 4 && promptCount > 3 ? 2 : 0;
        float[] dx = RandomFloats(batch * sequence * channels, 11, -3f, 3f);
        float[] initial = RandomFloats(offsets[^1] * channels, 12);
        float[] expected = (float[])initial.Clone();
        EmbeddingOps.PromptGradient<float>(expected, dx, promptIndex, offsets, batch, sequence, channels, accumulate);

        using var dPrompts = Put(initial, offset);
        using var dDx = Put(dx, offset);
        using var dIndex = Put(promptIndex);
        using var dOffsets = Put(offsets);
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, dOffsets.Span, offsets[^1], batch, sequence, channels, accumulate);
        float[] first = dPrompts.Read();
        AssertBitEqual(first, expected, "dPrompts");

        dPrompts.Write(initial);
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, dOffsets.Span, offsets[^1], batch, sequence, channels, accumulate);
        AssertBitEqual(dPrompts.Read(), first, "second run");
    }

    [Test]
    public void PromptGradientReadsOnlyEachPromptsOwnPositions()
    {
        // Prompts of lengths 2 and 1, one channel: row b's dx is 100·b + t, so each sum names the rows and positions it took.
        float[] dx = [0, 1, 2, /* row 1 */ 100, 101, 102, /* row 2 */ 200, 201, 202];
        var expected = new float[3];
        EmbeddingOps.PromptGradient<float>(expected, dx, [0, 1, 0], [0, 2, 3], batch: 3, sequence: 3, channels: 1, accumulate: false);
        Assert.That(expected, Is.EqualTo(new float[] { 0 + 200, 1 + 201, 100 }));

        using var dPrompts = Zeros<float>(3);
        using var dDx = Put(dx);
        using var dIndex = Put(new[] { 0, 1, 0 });
        using var dOffsets = Put(new[] { 0, 2, 3 });
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, dOffsets.Span, 3, 3, 3, 1, accumulate: false);
        AssertBitEqual(dPrompts.Read(), expected, "dPrompts");
    }

    [Test]
    public void PromptGradientAcceptsSpansLongerThanTheShapes()
    {
        const int batch = 3, sequence = 4, channels = 8;
        int[] promptIndex = [1, 0, 1], offsets = [0, 2, 4];
        float[] dx = RandomFloats(batch * sequence * channels + 40, 13);
        float[] initial = RandomFloats(4 * channels + 24, 14);
        float[] expected = (float[])initial.Clone();
        EmbeddingOps.PromptGradient<float>(expected, dx, promptIndex, offsets, batch, sequence, channels, accumulate: false);

        using var dPrompts = Put(initial);
        using var dDx = Put(dx);
        using var dIndex = Put(new[] { 1, 0, 1, 7, 7 });
        using var dOffsets = Put(offsets);
        PromptGradient.Launch(Device, dPrompts.Span, dDx.Span, dIndex.Span, dOffsets.Span, 4, batch, sequence, channels, accumulate: false);
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

    // bf16 rows (q|k|v and the attention output in bf16 precision): 16-byte copies when C % 8 == 0 and both buffers are
    // aligned, element copies otherwise (C = 12, or offset 1: rows start 2 bytes past a 16-byte boundary).
    //       count  C  rows offset
    [TestCase(1, 1, 1, 0)]
    [TestCase(6, 64, 10, 0)]
    [TestCase(6, 64, 10, 1)]
    [TestCase(5, 12, 9, 0)]
    [TestCase(3, 2304, 4, 0)]
    public void GatherRowsBf16CopiesExactly(int count, int channels, int rows, int offset)
    {
        var rng = new Random(41);
        ushort[] table = [.. Enumerable.Range(0, rows * channels).Select(_ => (ushort)rng.Next(0, 0x10000))];
        int[] gatherIndex = RandomInts(count, 42, rows);
        var gathered = new ushort[count * channels];
        for (int i = 0; i < count; i++) table.AsSpan(gatherIndex[i] * channels, channels).CopyTo(gathered.AsSpan(i * channels));
        using var dTable = Put(table, offset);
        using var dOut = Put(Enumerable.Repeat((ushort)0xffff, count * channels + 1).ToArray(), offset);
        using var dGather = Put(gatherIndex);
        GatherRows.Launch(Device, dOut.Span.Slice(0, count * channels), dTable.Span, dGather.Span, count, channels);
        var read = dOut.Read();
        Assert.That(read[..^1], Is.EqualTo(gathered), "gathered");
        Assert.That(read[^1], Is.EqualTo((ushort)0xffff), "the element after the rows is untouched");
    }

    //       rows  C  sources accumulate offset most entries
    [TestCase(1, 1, 1, false, 0, 5)]
    [TestCase(7, 33, 20, false, 0, 5)]
    [TestCase(9, 64, 30, true, 0, 5)]    // float4 path
    [TestCase(9, 64, 30, true, 1, 5)]    // scalar path
    [TestCase(5, 769, 12, false, 0, 5)]
    // Rows with up to 70 entries (more than one 32-index batch, not a multiple of the 8 loads in flight) over three
    // 128-channel slices, the last one partial: float4 and scalar paths.
    [TestCase(4, 300, 50, true, 0, 70)]
    [TestCase(4, 300, 50, false, 1, 70)]
    public void GatherSumRowsAddsEachRowsEntriesInOrder(int rows, int channels, int sourceRows, bool accumulate, int offset, int maxEntries)
    {
        var rng = new Random(31);
        var starts = new int[rows + 1];
        var index = new List<int>();
        for (int r = 0; r < rows; r++)
        {
            int count = r % 4 == 2 ? 0 : rng.Next(1, maxEntries + 1);  // some rows have no entries
            for (int i = 0; i < count; i++) index.Add(rng.Next(sourceRows));
            starts[r + 1] = index.Count;
        }
        float[] source = RandomFloats(sourceRows * channels, 32, -3f, 3f);
        float[] initial = RandomFloats(rows * channels, 33);
        var expected = (float[])initial.Clone();
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++)
            {
                float acc = accumulate ? initial[r * channels + c] : 0f;
                for (int i = starts[r]; i < starts[r + 1]; i++) acc += source[index[i] * channels + c];
                expected[r * channels + c] = acc;
            }

        using var dDestination = Put(initial, offset);
        using var dSource = Put(source, offset);
        using var dStarts = Put(starts);
        using var dIndex = Put(index.Count == 0 ? [0] : index.ToArray());
        GatherSumRows.Launch(Device, dDestination.Span, dSource.Span, dStarts.Span, dIndex.Span, rows, channels, accumulate);
        AssertBitEqual(dDestination.Read(), expected, "destination");
    }

    [Test]
    public void LaunchersRejectSpansShorterThanTheShapes()
    {
        using var small = Zeros<float>(10);
        using var index = Zeros<int>(4);
        var e = Assert.Throws<ArgumentException>(() => GatherRows.Launch(Device, small.Span, small.Span, index.Span, 4, 3));
        Assert.That(e!.Message, Does.Contain(GatherRows.Name).And.Contain("destination"));
        Assert.Throws<ArgumentException>(() => PromptGradient.Launch(Device, small.Span, small.Span, index.Span, index.Span, 4, 2, 1, 3, false));
    }
}

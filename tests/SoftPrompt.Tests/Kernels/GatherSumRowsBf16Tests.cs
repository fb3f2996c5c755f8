using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// gather_sum_rows_bf16 (GPT-2's bf16 reverse pass: q|k|v's gradient summed over shared rows straight into c_attn's GEMM
/// operand) against gather_sum_rows: bit for bit to_bf16 of the fp32 kernel's result.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class GatherSumRowsBf16Tests(DeviceKind kind) : KernelTestBase(kind)
{
    // gather_sum_rows_bf16 is the fp32 kernel's result rounded once to nearest even (a truncating store fails this):
    // every element, on the float4 (offset 0) and scalar (misaligned bf16 output) paths, with rows of no entries and
    // more than one 32-index batch over three slices; the element after the rows is untouched.
    //       rows  C  sources offset most entries
    [TestCase(1, 1, 1, 0, 5)]
    [TestCase(7, 33, 20, 0, 5)]
    [TestCase(9, 64, 30, 0, 5)]
    [TestCase(9, 64, 30, 1, 5)]
    [TestCase(4, 300, 50, 0, 70)]
    [TestCase(4, 300, 50, 1, 70)]
    public void EachElementIsTheFp32KernelsSumRoundedOnce(int rows, int channels, int sourceRows, int offset, int maxEntries)
    {
        var rng = new Random(41);
        var starts = new int[rows + 1];
        var index = new List<int>();
        for (int r = 0; r < rows; r++)
        {
            int count = r % 4 == 2 ? 0 : rng.Next(1, maxEntries + 1);
            for (int i = 0; i < count; i++) index.Add(rng.Next(sourceRows));
            starts[r + 1] = index.Count;
        }
        using var dSource = Put(RandomFloats(sourceRows * channels, 42, -3f, 3f));
        using var dStarts = Put(starts);
        using var dIndex = Put(index.Count == 0 ? [0] : index.ToArray());
        using var dFp32 = Zeros<float>(rows * channels);
        GatherSumRows.Launch(Device, dFp32.Span, dSource.Span, dStarts.Span, dIndex.Span, rows, channels, accumulate: false);
        ushort[] expected = [.. dFp32.Read().Select(GemmReference.ToBf16)];

        using var dBf16 = Put(Enumerable.Repeat((ushort)0xffff, rows * channels + 1).ToArray(), offset);
        GatherSumRows.Launch(Device, dBf16.Span.Slice(0, rows * channels), dSource.Span, dStarts.Span, dIndex.Span, rows, channels);
        var read = dBf16.Read();
        Assert.That(read[..^1], Is.EqualTo(expected), "to_bf16 of the fp32 sums, bit for bit");
        Assert.That(read[^1], Is.EqualTo((ushort)0xffff), "the element after the rows is untouched");
    }

    [Test]
    public void TheLauncherRejectsAShortDestination()
    {
        using var destination = Zeros<ushort>(5);
        using var source = Zeros<float>(6);
        using var starts = Zeros<int>(3);
        using var index = Zeros<int>(1);
        Assert.That(() => GatherSumRows.Launch(Device, destination.Span, source.Span, starts.Span, index.Span, 2, 3),
            Throws.ArgumentException.With.Message.Contains("gather_sum_rows_bf16"));
    }
}

namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/loss.cu (mirror of Cpu/CrossEntropyOps) and the deterministic loss sum.

/// <summary>
/// cross_entropy: per target row, rowLoss[r] = logsumexp(logits[r]) − logits[r, targets[r]]; when gradientScale ≠ 0 the
/// row's gradient (softmax − onehot)·gradientScale (CrossEntropyOps.ForwardBackward) overwrites logits[r] in place, or,
/// with <c>bf16Gradient</c>, goes there rounded to bf16 (the logits untouched). logits and bf16Gradient [R, stride] with
/// the V logits first in each row (stride ≥ V; the padding is neither read nor written); rowLoss [R]; targets [R] in
/// [0, V). One block per row; any V (float4 over the aligned middle of a row).
/// </summary>
internal static class CrossEntropy
{
    public const string Name = "cross_entropy";
    public const int MaxThreads = 1024;

    /// <summary>Threads per row: about 4 float4s per thread, a whole number of warps, 32..1024.</summary>
    public static int Threads(int vocab) => LaunchChecks.WarpMultiple((vocab + 15L) / 16, MaxThreads);

    public static void Launch(IComputeDevice device, DeviceSpan<float> logits, DeviceSpan<float> rowLoss, DeviceSpan<int> targets, int rows, int vocab, int stride,
        float gradientScale, DeviceSpan<ushort> bf16Gradient = default)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, vocab, 1);
        LaunchChecks.NotBelow(Name, stride, vocab);
        LaunchChecks.AtLeast(Name, logits, RowsLength(rows, vocab, stride), "[R, stride]");
        LaunchChecks.AtLeast(Name, rowLoss, rows, "[R]");
        LaunchChecks.AtLeast(Name, targets, rows, "[R]");
        LaunchChecks.AbsentOrAtLeast(Name, bf16Gradient, RowsLength(rows, vocab, stride), "bf16 gradient [R, stride]");
        if (rows == 0) return;
        KernelStubs.cross_entropy(device, new(rows, Threads(vocab)), logits: logits, gradient: bf16Gradient, row_loss: rowLoss, targets: targets, rows: rows, vocab: vocab,
            stride: stride, gradient_scale: gradientScale);
    }

    /// <summary>Elements R rows of stride reach: the last row needs only its V logits.</summary>
    internal static long RowsLength(int rows, int vocab, int stride) => rows == 0 ? 0 : (long)(rows - 1) * stride + vocab;
}

/// <summary>
/// sum_loss: result[0] = scale·Σ rowLoss (count = rowLoss.Length), one block and a fixed summation order, so the same
/// bits every run. result [≥ 1].
/// </summary>
internal static class SumLoss
{
    public const string Name = "sum_loss";
    public const int Threads = 1024;

    public static void Launch(IComputeDevice device, DeviceSpan<float> result, DeviceSpan<float> rowLoss, float scale)
    {
        LaunchChecks.AtLeast(Name, result, 1, "[1]");
        int n = LaunchChecks.Elements(Name, rowLoss.Length, "rowLoss");
        KernelStubs.sum_loss(device, new(1, Threads), result: result, row_loss: rowLoss, n: n, scale: scale);
    }
}

/// <summary>
/// row_argmax: indices[r] = the column of row r's largest logit, the first among equals (the first NaN if any):
/// TensorPrimitives.IndexOfMax's answer. indices [rows]; logits [rows, stride] with the vocab logits first in each row
/// (stride ≥ vocab; the padding is never read).
/// </summary>
internal static class RowArgmax
{
    public const string Name = "row_argmax";
    public const int Threads = 256;  // the kernel's shared memory holds 8 warps' partial results

    public static void Launch(IComputeDevice device, DeviceSpan<int> indices, DeviceSpan<float> logits, int rows, int vocab, int stride)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, vocab, 1);
        LaunchChecks.NotBelow(Name, stride, vocab);
        LaunchChecks.AtLeast(Name, indices, rows, "[rows]");
        LaunchChecks.AtLeast(Name, logits, CrossEntropy.RowsLength(rows, vocab, stride), "[rows, stride]");
        if (rows == 0) return;
        KernelStubs.row_argmax(device, new(rows, Threads), indices: indices, logits: logits, rows: rows, vocab: vocab, stride: stride);
    }
}

/// <summary>
/// head_gather_bf16: destination[i, :] = bf16(scale · source[rowIndex[i], :]) (row i itself without rowIndex), rounded to
/// nearest even: the bf16 LM head's operand, scaled before rounding as PyTorch scales T5 v1.0's decoder output.
/// destination [count, C]; source [rows, C]; rowIndex [count] in [0, rows), or empty.
/// </summary>
internal static class HeadGatherBf16
{
    public const string Name = "head_gather_bf16";
    public const int Threads = 256;
    private const int RowsPerBlock = Threads / 32;

    public static void Launch(IComputeDevice device, DeviceSpan<ushort> destination, DeviceSpan<float> source, DeviceSpan<int> rowIndex, int count, int channels, float scale)
    {
        LaunchChecks.NotBelow(Name, count, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        LaunchChecks.AtLeast(Name, destination, (long)count * channels, "[count, C]");
        LaunchChecks.AbsentOrAtLeast(Name, rowIndex, count, "[count]");
        long sourceRows = source.Length / channels;
        if (rowIndex.Length == 0 && sourceRows < count) throw new ArgumentException($"{Name}: source holds {sourceRows} rows of {channels}, {count} are read.", nameof(source));
        if (count == 0) return;
        KernelStubs.head_gather_bf16(device, new((count + RowsPerBlock - 1) / RowsPerBlock, Threads), destination: destination, source: source, row_index: rowIndex,
            count: count, channels: channels, source_rows: checked((int)sourceRows), scale: scale);
    }
}

namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/loss.cu (mirror of Cpu/CrossEntropyOps) and the deterministic loss sum.

/// <summary>
/// cross_entropy: per target row, rowLoss[r] = logsumexp(logits[r]) − logits[r, targets[r]]; when gradientScale ≠ 0
/// logits[r] is overwritten in place with (softmax − onehot)·gradientScale (CrossEntropyOps.ForwardBackward).
/// logits [R, V]; rowLoss [R]; targets [R] in [0, V). One block per row; any V (float4 over the aligned middle of a row).
/// </summary>
internal static unsafe class CrossEntropy
{
    public const string Name = "cross_entropy";
    public const int MaxThreads = 1024;

    /// <summary>Threads per row: about 4 float4s per thread, a whole number of warps, 32..1024.</summary>
    public static int Threads(int vocab) => LaunchChecks.WarpMultiple((vocab + 15L) / 16, MaxThreads);

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int*), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> logits, DeviceSpan<float> rowLoss, DeviceSpan<int> targets, int rows, int vocab, float gradientScale)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, vocab, 1);
        LaunchChecks.AtLeast(Name, logits, (long)rows * vocab, "[R, V]");
        LaunchChecks.AtLeast(Name, rowLoss, rows, "[R]");
        LaunchChecks.AtLeast(Name, targets, rows, "[R]");
        if (rows == 0) return;
        ulong logitsPtr = logits.Address, lossPtr = rowLoss.Address, targetsPtr = targets.Address;
        void** args = stackalloc void*[6];
        args[0] = &logitsPtr;
        args[1] = &lossPtr;
        args[2] = &targetsPtr;
        args[3] = &rows;
        args[4] = &vocab;
        args[5] = &gradientScale;
        device.Launch(device.GetKernel(Name), rows, Threads(vocab), 0, args, 6);
    }
}

/// <summary>
/// sum_loss: result[0] = scale·Σ rowLoss (count = rowLoss.Length), one block and a fixed summation order, so the same
/// bits every run. result [≥ 1].
/// </summary>
internal static unsafe class SumLoss
{
    public const string Name = "sum_loss";
    public const int Threads = 1024;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> result, DeviceSpan<float> rowLoss, float scale)
    {
        LaunchChecks.AtLeast(Name, result, 1, "[1]");
        int n = LaunchChecks.Elements(Name, rowLoss.Length, "rowLoss");
        ulong resultPtr = result.Address, lossPtr = rowLoss.Address;
        void** args = stackalloc void*[4];
        args[0] = &resultPtr;
        args[1] = &lossPtr;
        args[2] = &n;
        args[3] = &scale;
        device.Launch(device.GetKernel(Name), 1, Threads, 0, args, 4);
    }
}

/// <summary>
/// row_argmax: indices[r] = the column of row r's largest logit, the first among equals (the first NaN if any):
/// TensorPrimitives.IndexOfMax's answer. indices [rows]; logits [rows, vocab].
/// </summary>
internal static unsafe class RowArgmax
{
    public const string Name = "row_argmax";
    public const int Threads = 256;  // the kernel's shared memory holds 8 warps' partial results

    [KernelSignature(Name, typeof(int*), typeof(float*), typeof(int), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<int> indices, DeviceSpan<float> logits, int rows, int vocab)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, vocab, 1);
        LaunchChecks.AtLeast(Name, indices, rows, "[rows]");
        LaunchChecks.AtLeast(Name, logits, (long)rows * vocab, "[rows, vocab]");
        if (rows == 0) return;
        ulong indicesPtr = indices.Address, logitsPtr = logits.Address;
        void** args = stackalloc void*[4];
        args[0] = &indicesPtr;
        args[1] = &logitsPtr;
        args[2] = &rows;
        args[3] = &vocab;
        device.Launch(device.GetKernel(Name), rows, Threads, 0, args, 4);
    }
}

namespace SoftPrompt.Cuda.Kernels;

// Launcher of kernels/doctor.cu — one static class per kernel, named after it. The pattern every kernel follows:
//   * Name: the extern "C" name; the launch configuration (threads, grid, shared memory) is decided here, and only here;
//   * the launch goes through the generated KernelStubs.<kernel>, its arguments named as the .cu file names them;
//   * shapes are validated at this boundary with messages that name the kernel and the fix.

/// <summary>selftest_block_sum: blockSums[b] = Σ x[b·256 .. b·256+255] (block reduction via shuffles + shared memory).</summary>
internal static class SelftestBlockSum
{
    public const string Name = "selftest_block_sum";
    public const int Threads = 256;

    public static int Blocks(long n) => checked((int)((n + Threads - 1) / Threads));

    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<float> blockSums)
    {
        int n = checked((int)x.Length);
        int blocks = Blocks(n);
        if (blockSums.Length < blocks) throw new ArgumentException($"{Name}: {n} elements need {blocks} block sums, the output holds {blockSums.Length}.", nameof(blockSums));
        if (n == 0) return;
        KernelStubs.selftest_block_sum(device, new(blocks, Threads), x: x, block_sums: blockSums, n: n);
    }
}

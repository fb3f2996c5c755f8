namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/selftest.cu — one static class per kernel, named after it. The pattern every kernel follows:
//   * Name: the extern "C" name; the launch configuration (threads, grid, shared memory) is decided here, and only here;
//   * [KernelSignature] lists the parameters exactly as packed into the void** array (checked against PTX + emulator);
//   * arguments are copied into locals and pointed to from a stackalloc'ed void*[] — no allocation, no boxing;
//   * shapes are validated at this boundary with messages that name the kernel and the fix.

/// <summary>selftest_block_sum: blockSums[b] = Σ x[b·256 .. b·256+255] (block reduction via shuffles + shared memory).</summary>
internal static unsafe class SelftestBlockSum
{
    public const string Name = "selftest_block_sum";
    public const int Threads = 256;

    public static int Blocks(long n) => checked((int)((n + Threads - 1) / Threads));

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<float> blockSums)
    {
        int n = checked((int)x.Length);
        int blocks = Blocks(n);
        if (blockSums.Length < blocks) throw new ArgumentException($"{Name}: {n} elements need {blocks} block sums, the output holds {blockSums.Length}.", nameof(blockSums));
        if (n == 0) return;
        ulong xPtr = x.Address, sumsPtr = blockSums.Address;
        void** args = stackalloc void*[3];
        args[0] = &xPtr;
        args[1] = &sumsPtr;
        args[2] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 3);
    }
}

/// <summary>selftest_warp_ops: every warp primitive; out is [n, 8], votes is [n / 32, 4]; n a multiple of <see cref="Threads"/>.</summary>
internal static unsafe class SelftestWarpOps
{
    public const string Name = "selftest_warp_ops";
    public const int Threads = 96;  // three warps per block: lanes come from the thread's rank, not threadIdx.x alone

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(uint*))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<float> output, DeviceSpan<uint> votes)
    {
        long n = x.Length;
        if (n == 0 || n % Threads != 0) throw new ArgumentException($"{Name}: the input length {n} must be a positive multiple of {Threads}.", nameof(x));
        if (output.Length != 8 * n || votes.Length != 4 * (n / 32))
            throw new ArgumentException($"{Name}: outputs must hold [{n}, 8] and [{n / 32}, 4] elements, not {output.Length} and {votes.Length}.");
        ulong xPtr = x.Address, outPtr = output.Address, votesPtr = votes.Address;
        void** args = stackalloc void*[3];
        args[0] = &xPtr;
        args[1] = &outPtr;
        args[2] = &votesPtr;
        device.Launch(device.GetKernel(Name), checked((int)(n / Threads)), Threads, 0, args, 3);
    }
}

/// <summary>selftest_histogram: counts[v] += number of values equal to v (shared-memory int atomics, then global ones). Zero counts first.</summary>
internal static unsafe class SelftestHistogram
{
    public const string Name = "selftest_histogram";
    public const int Threads = 128;
    public const int MaxBins = 256;
    public const int MaxBlocks = 16;

    [KernelSignature(Name, typeof(int*), typeof(int), typeof(int*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<int> values, DeviceSpan<int> counts)
    {
        int n = checked((int)values.Length), bins = checked((int)counts.Length);
        if (bins is < 1 or > MaxBins) throw new ArgumentException($"{Name}: {bins} bins; 1 to {MaxBins} are supported.", nameof(counts));
        if (n == 0) return;
        int blocks = Math.Min(MaxBlocks, (n + Threads - 1) / Threads);
        ulong valuesPtr = values.Address, countsPtr = counts.Address;
        void** args = stackalloc void*[4];
        args[0] = &valuesPtr;
        args[1] = &n;
        args[2] = &countsPtr;
        args[3] = &bins;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 4);
    }
}

/// <summary>selftest_atomics: result = { max, (float) sum, CAS count, (float) max/2 }; initialize it to { int.MinValue, 0f, 0, -inf }.</summary>
internal static unsafe class SelftestAtomics
{
    public const string Name = "selftest_atomics";
    public const int Threads = 128;

    [KernelSignature(Name, typeof(int*), typeof(int), typeof(int*))]
    public static void Launch(IComputeDevice device, DeviceSpan<int> values, DeviceSpan<int> result)
    {
        if (result.Length != 4) throw new ArgumentException($"{Name}: the result holds 4 ints, not {result.Length}.", nameof(result));
        int n = checked((int)values.Length);
        if (n == 0) return;
        ulong valuesPtr = values.Address, resultPtr = result.Address;
        void** args = stackalloc void*[3];
        args[0] = &valuesPtr;
        args[1] = &n;
        args[2] = &resultPtr;
        device.Launch(device.GetKernel(Name), (n + Threads - 1) / Threads, Threads, 0, args, 3);
    }
}

/// <summary>selftest_reverse: reverses every 256-element chunk of input into output (through shared memory, ordered by a barrier).</summary>
internal static unsafe class SelftestReverse
{
    public const string Name = "selftest_reverse";
    public const int Threads = 256;  // = the kernel's tile size

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> input, DeviceSpan<float> output)
    {
        if (input.Length != output.Length) throw new ArgumentException($"{Name}: input {input.Length} and output {output.Length} elements differ.");
        int n = checked((int)input.Length);
        if (n == 0) return;
        ulong inPtr = input.Address, outPtr = output.Address;
        void** args = stackalloc void*[3];
        args[0] = &inPtr;
        args[1] = &outPtr;
        args[2] = &n;
        device.Launch(device.GetKernel(Name), (n + Threads - 1) / Threads, Threads, 0, args, 3);
    }
}

/// <summary>selftest_scan: inclusive prefix sum within each chunk of <c>threads</c> elements (dynamic shared memory: 2·threads floats).</summary>
internal static unsafe class SelftestScan
{
    public const string Name = "selftest_scan";
    public const int DefaultThreads = 128;

    public static uint SharedBytes(int threads) => (uint)(2 * threads * sizeof(float));

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> input, DeviceSpan<float> output, int threads = DefaultThreads)
    {
        if (input.Length != output.Length) throw new ArgumentException($"{Name}: input {input.Length} and output {output.Length} elements differ.");
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, 1024);
        int n = checked((int)input.Length);
        if (n == 0) return;
        ulong inPtr = input.Address, outPtr = output.Address;
        void** args = stackalloc void*[3];
        args[0] = &inPtr;
        args[1] = &outPtr;
        args[2] = &n;
        device.Launch(device.GetKernel(Name), (n + threads - 1) / threads, threads, SharedBytes(threads), args, 3);
    }
}

/// <summary>
/// selftest_convert: bf16/fp16 bits of every input (round to nearest even), their float values ([n, 2]) and
/// { expf, tanhf, rsqrtf(|x|+1), __expf, fmaxf(x, 0), __fdividef(x, 3) } ([n, 6]); n a multiple of 4.
/// </summary>
internal static unsafe class SelftestConvert
{
    public const string Name = "selftest_convert";
    public const int Threads = 64;

    [KernelSignature(Name, typeof(float*), typeof(ushort*), typeof(ushort*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> input, DeviceSpan<ushort> bf16, DeviceSpan<ushort> fp16,
        DeviceSpan<float> back, DeviceSpan<float> math)
    {
        int n = checked((int)input.Length);
        if (n % 4 != 0) throw new ArgumentException($"{Name}: the input length {n} must be a multiple of 4 (float4 loads).", nameof(input));
        if (bf16.Length != n || fp16.Length != n || back.Length != 2L * n || math.Length != 6L * n)
            throw new ArgumentException($"{Name}: outputs must hold {n}, {n}, {2 * n} and {6 * n} elements.");
        if (n == 0) return;
        ulong inPtr = input.Address, bf16Ptr = bf16.Address, fp16Ptr = fp16.Address, backPtr = back.Address, mathPtr = math.Address;
        void** args = stackalloc void*[6];
        args[0] = &inPtr;
        args[1] = &bf16Ptr;
        args[2] = &fp16Ptr;
        args[3] = &backPtr;
        args[4] = &mathPtr;
        args[5] = &n;
        device.Launch(device.GetKernel(Name), (n / 4 + Threads - 1) / Threads, Threads, 0, args, 6);
    }
}

/// <summary>selftest_oob_write: writes output[output.Length] — deliberately out of bounds. Emulator (AddressSanitizer) tests only.</summary>
internal static unsafe class SelftestOobWrite
{
    public const string Name = "selftest_oob_write";

    [KernelSignature(Name, typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> output)
    {
        int n = checked((int)output.Length);
        ulong outPtr = output.Address;
        void** args = stackalloc void*[2];
        args[0] = &outPtr;
        args[1] = &n;
        device.Launch(device.GetKernel(Name), 1, 32, 0, args, 2);
    }
}

/// <summary>selftest_assert_nonneg: assert(x[i] &gt;= 0) in a kernel. Emulator tests only (a device assert kills a GPU context).</summary>
internal static unsafe class SelftestAssertNonneg
{
    public const string Name = "selftest_assert_nonneg";
    public const int Threads = 32;

    [KernelSignature(Name, typeof(int*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<int> x)
    {
        int n = checked((int)x.Length);
        if (n == 0) return;
        ulong xPtr = x.Address;
        void** args = stackalloc void*[2];
        args[0] = &xPtr;
        args[1] = &n;
        device.Launch(device.GetKernel(Name), (n + Threads - 1) / Threads, Threads, 0, args, 2);
    }
}

/// <summary>selftest_divergent_barrier: a deliberate barrier/warp-vote deadlock (64 threads). Emulator tests only.</summary>
internal static unsafe class SelftestDivergentBarrier
{
    public const string Name = "selftest_divergent_barrier";

    [KernelSignature(Name, typeof(uint*))]
    public static void Launch(IComputeDevice device, DeviceSpan<uint> output)
    {
        if (output.Length < 64) throw new ArgumentException($"{Name}: the output holds 64 values.", nameof(output));
        ulong outPtr = output.Address;
        void** args = stackalloc void*[1];
        args[0] = &outPtr;
        device.Launch(device.GetKernel(Name), 1, 64, 0, args, 1);
    }
}

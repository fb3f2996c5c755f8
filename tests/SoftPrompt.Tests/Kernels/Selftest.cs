using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Tests.Kernels;

// Launchers of tests/kernels/selftest.cu (the test-only kernel module), through its generated TestKernelStubs; the
// pattern is the product's (src/SoftPrompt/Cuda/Kernels/Doctor.cs).

/// <summary>selftest_warp_ops: every warp primitive; out is [n, 8], votes is [n / 32, 4]; n a multiple of <see cref="Threads"/>.</summary>
internal static class SelftestWarpOps
{
    public const string Name = "selftest_warp_ops";
    public const int Threads = 96;  // three warps per block: lanes come from the thread's rank, not threadIdx.x alone

    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<float> output, DeviceSpan<uint> votes)
    {
        long n = x.Length;
        if (n == 0 || n % Threads != 0) throw new ArgumentException($"{Name}: the input length {n} must be a positive multiple of {Threads}.", nameof(x));
        if (output.Length != 8 * n || votes.Length != 4 * (n / 32))
            throw new ArgumentException($"{Name}: outputs must hold [{n}, 8] and [{n / 32}, 4] elements, not {output.Length} and {votes.Length}.");
        TestKernelStubs.selftest_warp_ops(device, new(checked((int)(n / Threads)), Threads), x: x, @out: output, votes: votes);
    }
}

/// <summary>selftest_histogram: counts[v] += number of values equal to v (shared-memory int atomics, then global ones). Zero counts first.</summary>
internal static class SelftestHistogram
{
    public const string Name = "selftest_histogram";
    public const int Threads = 128;
    public const int MaxBins = 256;
    public const int MaxBlocks = 16;

    public static void Launch(IComputeDevice device, DeviceSpan<int> values, DeviceSpan<int> counts)
    {
        int n = checked((int)values.Length), bins = checked((int)counts.Length);
        if (bins is < 1 or > MaxBins) throw new ArgumentException($"{Name}: {bins} bins; 1 to {MaxBins} are supported.", nameof(counts));
        if (n == 0) return;
        int blocks = Math.Min(MaxBlocks, (n + Threads - 1) / Threads);
        TestKernelStubs.selftest_histogram(device, new(blocks, Threads), values: values, n: n, counts: counts, bins: bins);
    }
}

/// <summary>selftest_atomics: result = { max, (float) sum, CAS count, (float) max/2 }; initialize it to { int.MinValue, 0f, 0, -inf }.</summary>
internal static class SelftestAtomics
{
    public const string Name = "selftest_atomics";
    public const int Threads = 128;

    public static void Launch(IComputeDevice device, DeviceSpan<int> values, DeviceSpan<int> result)
    {
        if (result.Length != 4) throw new ArgumentException($"{Name}: the result holds 4 ints, not {result.Length}.", nameof(result));
        int n = checked((int)values.Length);
        if (n == 0) return;
        TestKernelStubs.selftest_atomics(device, new((n + Threads - 1) / Threads, Threads), values: values, n: n, result: result);
    }
}

/// <summary>selftest_reverse: reverses every 256-element chunk of input into output (through shared memory, ordered by a barrier).</summary>
internal static class SelftestReverse
{
    public const string Name = "selftest_reverse";
    public const int Threads = 256;  // = the kernel's tile size

    public static void Launch(IComputeDevice device, DeviceSpan<float> input, DeviceSpan<float> output)
    {
        if (input.Length != output.Length) throw new ArgumentException($"{Name}: input {input.Length} and output {output.Length} elements differ.");
        int n = checked((int)input.Length);
        if (n == 0) return;
        TestKernelStubs.selftest_reverse(device, new((n + Threads - 1) / Threads, Threads), @in: input, @out: output, n: n);
    }
}

/// <summary>selftest_scan: inclusive prefix sum within each chunk of <c>threads</c> elements (dynamic shared memory: 2·threads floats).</summary>
internal static class SelftestScan
{
    public const string Name = "selftest_scan";
    public const int DefaultThreads = 128;

    public static uint SharedBytes(int threads) => (uint)(2 * threads * sizeof(float));

    public static void Launch(IComputeDevice device, DeviceSpan<float> input, DeviceSpan<float> output, int threads = DefaultThreads)
    {
        if (input.Length != output.Length) throw new ArgumentException($"{Name}: input {input.Length} and output {output.Length} elements differ.");
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, 1024);
        int n = checked((int)input.Length);
        if (n == 0) return;
        TestKernelStubs.selftest_scan(device, new((n + threads - 1) / threads, threads, SharedBytes(threads)), @in: input, @out: output, n: n);
    }
}

/// <summary>
/// selftest_convert: bf16/fp16 bits of every input (round to nearest even), their float values ([n, 2]) and
/// { expf, tanhf, rsqrtf(|x|+1), __expf, fmaxf(x, 0), __fdividef(x, 3) } ([n, 6]); n a multiple of 4.
/// </summary>
internal static class SelftestConvert
{
    public const string Name = "selftest_convert";
    public const int Threads = 64;

    public static void Launch(IComputeDevice device, DeviceSpan<float> input, DeviceSpan<ushort> bf16, DeviceSpan<ushort> fp16,
        DeviceSpan<float> back, DeviceSpan<float> math)
    {
        int n = checked((int)input.Length);
        if (n % 4 != 0) throw new ArgumentException($"{Name}: the input length {n} must be a multiple of 4 (float4 loads).", nameof(input));
        if (bf16.Length != n || fp16.Length != n || back.Length != 2L * n || math.Length != 6L * n)
            throw new ArgumentException($"{Name}: outputs must hold {n}, {n}, {2 * n} and {6 * n} elements.");
        if (n == 0) return;
        TestKernelStubs.selftest_convert(device, new((n / 4 + Threads - 1) / Threads, Threads), @in: input, bf16_out: bf16, fp16_out: fp16, back: back, math: math, n: n);
    }
}

/// <summary>selftest_pack: output[i] = { pack_bf16x2(x[2i], x[2i+1]), pack_fp16x2(x[2i], x[2i+1]) } (the lower index in the low half).</summary>
internal static class SelftestPack
{
    public const string Name = "selftest_pack";
    public const int Threads = 64;

    public static void Launch(IComputeDevice device, DeviceSpan<float> pairs, DeviceSpan<uint> output)
    {
        if (pairs.Length % 2 != 0) throw new ArgumentException($"{Name}: the input holds pairs, not {pairs.Length} values.", nameof(pairs));
        int n = checked((int)(pairs.Length / 2));
        if (output.Length != 2L * n) throw new ArgumentException($"{Name}: {n} pairs need {2 * n} outputs, not {output.Length}.", nameof(output));
        if (n == 0) return;
        TestKernelStubs.selftest_pack(device, new((n + Threads - 1) / Threads, Threads), x: pairs, @out: output, n: n);
    }
}

/// <summary>
/// selftest_mma: one mma.m16n8k16 (bf16 or fp16 inputs, fp32 accumulation) per problem on fragment registers the caller
/// lays out: a [problems, 32, 4], b [problems, 32, 2], c and d [problems, 32, 4], lane by lane.
/// </summary>
internal static class SelftestMma
{
    public const string Name = "selftest_mma";
    public const int Threads = 32;

    public static void Launch(IComputeDevice device, DeviceSpan<uint> a, DeviceSpan<uint> b, DeviceSpan<float> c, DeviceSpan<float> d, bool fp16)
    {
        long problems = a.Length / (4 * Threads);
        if (problems == 0 || a.Length != problems * 4 * Threads || b.Length != problems * 2 * Threads || c.Length != a.Length || d.Length != a.Length)
            throw new ArgumentException($"{Name}: fragments must hold [problems, 32, 4], [problems, 32, 2], [problems, 32, 4] and [problems, 32, 4] values, not {a.Length}, {b.Length}, {c.Length} and {d.Length}.");
        TestKernelStubs.selftest_mma(device, new(checked((int)problems), Threads), a: a, b: b, c: c, d: d, use_fp16: fp16 ? 1 : 0);
    }
}

/// <summary>
/// selftest_ldmatrix: a [64, 8] tile of 16-bit values in shared memory, lane l addressing tile row rows[l]; output
/// [32, 12]: per lane the registers of ldmatrix x4, x4.trans, x2 and x2.trans.
/// </summary>
internal static class SelftestLdmatrix
{
    public const string Name = "selftest_ldmatrix";
    public const int TileRows = 64;

    public static void Launch(IComputeDevice device, DeviceSpan<ushort> tile, DeviceSpan<int> rows, DeviceSpan<uint> output)
    {
        if (tile.Length != TileRows * 8 || rows.Length != 32 || output.Length != 32 * 12)
            throw new ArgumentException($"{Name}: tile, rows and output must hold {TileRows * 8}, 32 and {32 * 12} values, not {tile.Length}, {rows.Length} and {output.Length}.");
        TestKernelStubs.selftest_ldmatrix(device, new(1, 32), tile: tile, rows: rows, @out: output);
    }
}

/// <summary>selftest_cp_async: three [256] fp32 tiles copied global → shared by cp.async in three groups and read back after their waits.</summary>
internal static class SelftestCpAsync
{
    public const string Name = "selftest_cp_async";
    public const int Elements = 3 * 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> source, DeviceSpan<float> output)
    {
        if (source.Length != Elements || output.Length != Elements)
            throw new ArgumentException($"{Name}: source and output hold {Elements} floats, not {source.Length} and {output.Length}.");
        TestKernelStubs.selftest_cp_async(device, new(1, 64), src: source, @out: output);
    }
}

/// <summary>
/// selftest_gemm_bf16: c [m, n] fp32 = a [m, k] · b [k, n] (bf16 bits, row-major) on tensor cores — ldmatrix, mma and a
/// two-stage cp.async pipeline composed. m and n multiples of 64, k of 32.
/// </summary>
internal static class SelftestGemmBf16
{
    public const string Name = "selftest_gemm_bf16";
    public const int Tile = 64;
    public const int Step = 32;
    public const int Threads = 128;

    public static void Launch(IComputeDevice device, DeviceSpan<ushort> a, DeviceSpan<ushort> b, DeviceSpan<float> c, int m, int n, int k)
    {
        if (m <= 0 || n <= 0 || k <= 0 || m % Tile != 0 || n % Tile != 0 || k % Step != 0)
            throw new ArgumentException($"{Name}: m = {m} and n = {n} must be positive multiples of {Tile}, k = {k} of {Step}.");
        if (a.Length != (long)m * k || b.Length != (long)k * n || c.Length != (long)m * n)
            throw new ArgumentException($"{Name}: a, b and c must hold {(long)m * k}, {(long)k * n} and {(long)m * n} values, not {a.Length}, {b.Length} and {c.Length}.");
        TestKernelStubs.selftest_gemm_bf16(device, new(new Dim3((uint)(n / Tile), (uint)(m / Tile)), Threads), a: a, b: b, c: c, m: m, n: n, k: k);
    }
}

/// <summary>selftest_oob_write: writes output[output.Length] — deliberately out of bounds. Emulator (AddressSanitizer) tests only.</summary>
internal static class SelftestOobWrite
{
    public const string Name = "selftest_oob_write";

    public static void Launch(IComputeDevice device, DeviceSpan<float> output)
    {
        int n = checked((int)output.Length);
        TestKernelStubs.selftest_oob_write(device, new(1, 32), @out: output, n: n);
    }
}

/// <summary>selftest_assert_nonneg: assert(x[i] &gt;= 0) in a kernel. Emulator tests only (a device assert kills a GPU context).</summary>
internal static class SelftestAssertNonneg
{
    public const string Name = "selftest_assert_nonneg";
    public const int Threads = 32;

    public static void Launch(IComputeDevice device, DeviceSpan<int> x)
    {
        int n = checked((int)x.Length);
        if (n == 0) return;
        TestKernelStubs.selftest_assert_nonneg(device, new((n + Threads - 1) / Threads, Threads), x: x, n: n);
    }
}

/// <summary>selftest_divergent_barrier: a deliberate barrier/warp-vote deadlock (64 threads). Emulator tests only.</summary>
internal static class SelftestDivergentBarrier
{
    public const string Name = "selftest_divergent_barrier";

    public static void Launch(IComputeDevice device, DeviceSpan<uint> output)
    {
        if (output.Length < 64) throw new ArgumentException($"{Name}: the output holds 64 values.", nameof(output));
        TestKernelStubs.selftest_divergent_barrier(device, new(1, 64), @out: output);
    }
}

/// <summary>selftest_cp_async_no_wait: reads a cp.async tile without waiting for it (a race on a GPU). Emulator tests only.</summary>
internal static class SelftestCpAsyncNoWait
{
    public const string Name = "selftest_cp_async_no_wait";

    public static void Launch(IComputeDevice device, DeviceSpan<float> source, DeviceSpan<float> output)
    {
        if (source.Length != 256 || output.Length != 256) throw new ArgumentException($"{Name}: source and output hold 256 floats.");
        TestKernelStubs.selftest_cp_async_no_wait(device, new(1, 64), src: source, @out: output);
    }
}

/// <summary>selftest_missing_barrier: a shared-memory hand-off from thread 0 without its barrier (64 threads). Emulator tests only.</summary>
internal static class SelftestMissingBarrier
{
    public const string Name = "selftest_missing_barrier";

    public static void Launch(IComputeDevice device, DeviceSpan<int> output)
    {
        if (output.Length != 64) throw new ArgumentException($"{Name}: the output holds 64 values.", nameof(output));
        TestKernelStubs.selftest_missing_barrier(device, new(1, 64), @out: output);
    }
}

/// <summary>selftest_mma_half_warp: an mma reached by only 16 lanes of the warp. Emulator tests only.</summary>
internal static class SelftestMmaHalfWarp
{
    public const string Name = "selftest_mma_half_warp";

    public static void Launch(IComputeDevice device, DeviceSpan<float> output)
    {
        if (output.Length < 64) throw new ArgumentException($"{Name}: the output holds [16, 4] values.", nameof(output));
        TestKernelStubs.selftest_mma_half_warp(device, new(1, 32), d: output);
    }
}

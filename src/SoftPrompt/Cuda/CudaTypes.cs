namespace SoftPrompt.Cuda;

/// <summary>A GPU's compute capability, e.g. 9.0 for an H100.</summary>
public readonly record struct ComputeCapability(int Major, int Minor)
{
    public override string ToString() => $"{Major}.{Minor}";
}

/// <summary>Device memory as cuMemGetInfo reports it for the current context's GPU.</summary>
public readonly record struct DeviceMemoryInfo(long FreeBytes, long TotalBytes)
{
    public long UsedBytes => TotalBytes - FreeBytes;
    public override string ToString() => $"{FreeBytes / GiB:F1} GiB free of {TotalBytes / GiB:F1} GiB";
    private const double GiB = 1024.0 * 1024 * 1024;
}

/// <summary>
/// Row-major bf16 GEMM operand (the raw 16-bit patterns of bfloat16 values); the layout rules are those of
/// <see cref="GemmOperand"/>.
/// </summary>
public readonly record struct Bf16GemmOperand(DeviceSpan<ushort> Data, int LeadingDimension, bool Transposed = false, long BatchStride = 0);

/// <summary>What the compiler and JIT made of a kernel (cuFuncGetAttribute).</summary>
public readonly record struct KernelAttributes(
    int MaxThreadsPerBlock, int Registers, int StaticSharedBytes, int LocalBytesPerThread, int ConstantBytes,
    int PtxVersion, int BinaryVersion, int MaxDynamicSharedBytes);

/// <summary>One GPU as the driver describes it.</summary>
public sealed record CudaDeviceInfo(
    int Ordinal, string Name, ComputeCapability ComputeCapability, int MultiprocessorCount, long TotalMemoryBytes,
    int MaxThreadsPerBlock, int MaxSharedMemoryPerBlock, int MaxSharedMemoryPerBlockOptin, int L2CacheBytes, int ClockRateKHz)
{
    /// <summary>Name, capability, SMs, memory and opt-in shared memory on one line.</summary>
    public string Summary =>
        $"{Name}, compute capability {ComputeCapability}, {MultiprocessorCount} SMs, " +
        $"{TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, {MaxSharedMemoryPerBlockOptin / 1024} KiB shared memory per block (opt-in)";

    public override string ToString() => $"GPU {Ordinal}: {Summary}";
}

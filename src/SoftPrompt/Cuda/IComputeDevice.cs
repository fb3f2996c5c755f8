namespace SoftPrompt.Cuda;

/// <summary>A launch grid or block size.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);
    public static implicit operator Dim3(int x) => new(checked((uint)x));
}

/// <summary>A view of <see cref="Length"/> elements of device memory starting at <see cref="Address"/>.</summary>
public readonly record struct DeviceSpan<T>(ulong Address, long Length) where T : unmanaged
{
    public unsafe DeviceSpan<T> Slice(long start, long length)
    {
        if ((ulong)start > (ulong)Length || (ulong)length > (ulong)(Length - start))
            throw new ArgumentOutOfRangeException(nameof(start), $"Slice [{start}, {start + length}) is outside a device span of {Length} elements.");
        return new(Address + (ulong)(start * sizeof(T)), length);
    }
    public DeviceSpan<T> Slice(long start) => Slice(start, Length - start);
    public unsafe long ByteLength => Length * sizeof(T);
}

/// <summary>Row-major matrix operand of a GEMM: element (r, c) of the stored matrix is at r * LeadingDimension + c.</summary>
public readonly record struct GemmOperand(DeviceSpan<float> Data, int LeadingDimension, bool Transposed = false, long BatchStride = 0);

/// <summary>
/// The small device contract the CUDA engine is written against. Two implementations: the real GPU
/// (CUDA driver API + cuBLAS) and the emulated one (kernels compiled for the CPU, GEMM on the CPU), so
/// launch configurations, argument order and buffer plans are exercised without a GPU.
/// All work is queued on the device's one stream, in order; only <see cref="Synchronize"/> and the
/// copies to the host wait for it.
/// </summary>
public interface IComputeDevice : IDisposable
{
    /// <summary>"cuda" or "cuda-emulated".</summary>
    string Kind { get; }
    /// <summary>Human-readable device description (name, capability, memory).</summary>
    string Description { get; }

    DeviceBuffer<T> Allocate<T>(long count) where T : unmanaged;
    /// <summary>Called by <see cref="DeviceBuffer{T}.Dispose"/>.</summary>
    void Free(ulong address);

    void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceSpan<T> destination) where T : unmanaged;
    /// <summary>Waits for queued work, then copies.</summary>
    void CopyToHost<T>(DeviceSpan<T> source, Span<T> destination) where T : unmanaged;
    void CopyDeviceToDevice<T>(DeviceSpan<T> source, DeviceSpan<T> destination) where T : unmanaged;
    void Zero<T>(DeviceSpan<T> destination) where T : unmanaged;

    /// <summary>Looks up a kernel of the embedded kernel module by its extern "C" name.</summary>
    KernelFunction GetKernel(string name);
    /// <summary>
    /// Queues a launch. <paramref name="arguments"/> points to <paramref name="argumentCount"/> pointers,
    /// each to one argument value (the CUDA kernelParams convention).
    /// </summary>
    unsafe void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount);

    /// <summary>
    /// Row-major fp32 GEMM, batched when <paramref name="batchCount"/> &gt; 1:
    /// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C. Operand strides come from each GemmOperand.
    /// </summary>
    void Gemm(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount = 1);
    /// <summary>As <see cref="Gemm"/> with bf16 A and B on tensor cores, products and sums in fp32, fp32 C.</summary>
    void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, int batchCount = 1);
    /// <summary>
    /// As <see cref="Gemm"/> with bf16 A, B and C: fp32 products and sums (and alpha·sum + beta·C, C widened exactly), each
    /// output rounded once to nearest even bf16 — a GEMM whose only readers take bf16 (an activation's pre-activations).
    /// </summary>
    void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, int batchCount = 1);

    /// <summary>
    /// Row-major D[m, n] = epilogue(alpha·op(A)·op(B) + beta·C), one GEMM (cuBLASLt's matmul): the epilogue (bias, GELU with
    /// the saved pre-activation, GELU's gradient) acts on the fp32 sum before the single rounding to D's type, so it costs
    /// no pass of its own. D may differ from C (a residual as C with beta = 1); C is read only when beta ≠ 0 and then has
    /// D's leading dimension. fp32 A, B, C, D (TF32 where the device allows it).
    /// </summary>
    void GemmEpilogue(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue);
    /// <summary>As the fp32 <see cref="GemmEpilogue(int, int, int, float, GemmOperand, GemmOperand, float, GemmOperand, GemmOperand, GemmEpilogue{float})"/> with bf16 A and B (tensor cores, fp32 sums).</summary>
    void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue);
    /// <summary>As above with bf16 A, B, C, D and aux, the epilogue in D's type as cuBLASLt does it: v rounded to bf16, then the bias, GELU of the bf16-rounded pre-activation (aux), each result rounded to nearest even.</summary>
    void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, Bf16GemmOperand d, GemmEpilogue<ushort> epilogue);

    void Synchronize();

    /// <summary>
    /// Starts timing every kernel launch, GEMM, copy and memset queued from now on (replacing a profiler already
    /// running); read the times with <see cref="DeviceProfiler.Read"/>. While profiling is off an op pays one branch.
    /// </summary>
    /// <exception cref="NotSupportedException">The device cannot time its ops.</exception>
    DeviceProfiler StartProfiling() => throw new NotSupportedException($"The {Kind} device cannot profile its ops.");
    /// <summary>Stops timing ops and releases the profiler (its events).</summary>
    void StopProfiling() { }
    /// <summary>The running profiler; null while profiling is off.</summary>
    DeviceProfiler? Profiler => null;

    /// <summary>Bytes an allocation could still get now (engines size plans by it); unlimited where the device cannot tell.</summary>
    long FreeMemoryBytes => long.MaxValue;
}

/// <summary>A kernel handle: its name and the implementation's opaque handle.</summary>
public sealed record KernelFunction(string Name, nint Handle, int MaxThreadsPerBlock);

namespace SoftPrompt.Cuda.Emulation;

/// <summary>
/// The CUDA device contract on the CPU: device memory is host memory from malloc's heap (posix_memalign of the exact
/// size, 256-byte aligned like cudaMalloc, so the AddressSanitizer build puts redzones right around every buffer),
/// copies are memcpy inside the emulator library (checked by ASan), a launch
/// runs the kernel to completion in the emulator library (kernels/*.cu compiled for the CPU), and GEMMs run in
/// <see cref="EmulatedGemm"/>. Work is synchronous and in order, like one stream. Fresh allocations hold 0xFF bytes
/// (NaN as fp32, -1 as int32), so a kernel that reads memory nobody wrote shows up in its results.
/// Not thread-safe: drive a device from one thread at a time.
/// </summary>
public sealed unsafe class EmulatedDevice : IComputeDevice
{
    /// <summary>cudaMalloc's alignment.</summary>
    public const int Alignment = 256;

    private readonly EmulatorLibrary library;
    private readonly Dictionary<ulong, long> allocations = [];
    private readonly Dictionary<string, KernelFunction> kernels = new(StringComparer.Ordinal);
    private readonly List<EmulatorLibrary> addedLibraries = [];
    // What a KernelFunction's handle indexes: the library that holds the kernel and its index in that library's table.
    private readonly List<(EmulatorLibrary Library, int Index)> launchable = [];
    private bool disposed;

    /// <summary>Opens the emulator library at <paramref name="libraryPath"/>, or the default one (<see cref="EmulatorLibrary"/>).</summary>
    /// <exception cref="CudaException">The emulator was not built or cannot be loaded.</exception>
    public EmulatedDevice(string? libraryPath = null)
    {
        library = EmulatorLibrary.Load(libraryPath);
    }

    /// <summary>Whether the default emulator library can be loaded here; <paramref name="reason"/> says why not.</summary>
    public static bool IsAvailable(out string? reason)
    {
        try
        {
            EmulatorLibrary.Load();
            reason = null;
            return true;
        }
        catch (CudaException e)
        {
            reason = e.Message;
            return false;
        }
    }

    public string Kind => "cuda-emulated";

    public string Description =>
        $"CPU kernel emulator ({Path.GetFileName(library.Path)}{(library.IsAddressSanitized ? ", AddressSanitizer" : "")}, " +
        $"{library.Kernels.Count} kernels, {library.WorkerThreads} worker threads)";

    public EmulatorLibrary Library => library;
    public bool IsAddressSanitized => library.IsAddressSanitized;
    /// <summary>Bytes currently allocated on this device.</summary>
    public long AllocatedBytes { get; private set; }
    /// <summary>
    /// A GPU's memory size to play: allocations past it fail as they would on that GPU, and engines plan for it. By
    /// default the host's memory, which backs the emulated device (past it Linux would kill the process instead).
    /// </summary>
    public long MemoryLimitBytes { get; set; } = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    public long FreeMemoryBytes => MemoryLimitBytes - AllocatedBytes;

    public DeviceBuffer<T> Allocate<T>(long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ThrowIfDisposed();
        if (count == 0) return new DeviceBuffer<T>(this, 0, 0);
        long bytes = checked(count * sizeof(T));
        if (bytes > FreeMemoryBytes)
            throw new OutOfMemoryException($"Emulated device: allocation of {bytes} bytes exceeds the {MemoryLimitBytes}-byte memory limit ({AllocatedBytes} bytes in use).");
        void* memory = library.Allocate((nuint)bytes, Alignment);
        if (memory == null) throw new OutOfMemoryException($"Emulated device: allocation of {bytes} bytes failed.");
        library.Fill(memory, 0xff, (nuint)bytes);
        allocations.Add((ulong)memory, bytes);
        AllocatedBytes += bytes;
        return new DeviceBuffer<T>(this, (ulong)memory, count);
    }

    public void Free(ulong address)
    {
        if (disposed || address == 0) return;
        if (!allocations.Remove(address, out long bytes))
            throw new InvalidOperationException($"Free of 0x{address:x}: not an allocation of this emulated device (freed twice, or a slice).");
        AllocatedBytes -= bytes;
        library.Free((void*)address);
    }

    public void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceSpan<T> destination) where T : unmanaged
    {
        int begin = profiler?.Begin() ?? 0;
        RequireSameLength(source.Length, destination.Length, "host → device");
        ThrowIfDisposed();
        if (!source.IsEmpty)
            fixed (T* host = source) library.Copy((void*)destination.Address, host, (nuint)destination.ByteLength);
        profiler?.End(DeviceOp.Transfer(DeviceOpKind.CopyHostToDevice), begin);
    }

    public void CopyToHost<T>(DeviceSpan<T> source, Span<T> destination) where T : unmanaged
    {
        int begin = profiler?.Begin() ?? 0;
        RequireSameLength(destination.Length, source.Length, "device → host");
        ThrowIfDisposed();
        if (!destination.IsEmpty)
            fixed (T* host = destination) library.Copy(host, (void*)source.Address, (nuint)source.ByteLength);
        profiler?.End(DeviceOp.Transfer(DeviceOpKind.CopyDeviceToHost), begin);
    }

    public void CopyDeviceToDevice<T>(DeviceSpan<T> source, DeviceSpan<T> destination) where T : unmanaged
    {
        int begin = profiler?.Begin() ?? 0;
        RequireSameLength(source.Length, destination.Length, "device → device");
        ThrowIfDisposed();
        ulong bytes = (ulong)source.ByteLength;
        if (source.Length > 0 && source.Address < destination.Address + bytes && destination.Address < source.Address + bytes)
            throw new ArgumentException($"Device → device copy of {source.Length} elements between overlapping ranges 0x{source.Address:x} and 0x{destination.Address:x}.");
        if (source.Length > 0) library.Copy((void*)destination.Address, (void*)source.Address, (nuint)bytes);
        profiler?.End(DeviceOp.Transfer(DeviceOpKind.CopyDeviceToDevice), begin);
    }

    public void Zero<T>(DeviceSpan<T> destination) where T : unmanaged
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        if (destination.Length > 0) library.Fill((void*)destination.Address, 0, (nuint)destination.ByteLength);
        profiler?.End(DeviceOp.Transfer(DeviceOpKind.Memset), begin);
    }

    /// <exception cref="CudaException">No kernel of that name in the emulator library.</exception>
    public KernelFunction GetKernel(string name)
    {
        ThrowIfDisposed();
        if (kernels.TryGetValue(name, out var function)) return function;
        var (holder, kernel) = Find(name);
        if (kernel is null) throw new CudaException(
            $"Kernel '{name}' is not in the emulator library {library.Path} ({library.Kernels.Count} kernels): rebuild with ./build.sh kernels, " +
            "and check that the kernel is declared as extern \"C\" __global__ void name( on one line.");
        function = new KernelFunction(name, launchable.Count, 1024);
        launchable.Add((holder, kernel.Index));
        kernels[name] = function;
        return function;
    }

    // A separate method: a lambda over name would allocate its closure on every GetKernel, cached or not.
    private (EmulatorLibrary Library, EmulatedKernel? Kernel) Find(string name)
    {
        if (library.Find(name) is { } kernel) return (library, kernel);
        foreach (var added in addedLibraries)
            if (added.Find(name) is { } found) return (added, found);
        return (library, null);
    }

    /// <summary>
    /// Lets <see cref="GetKernel"/> (so the launch stubs) find the kernels of <paramref name="added"/> too: the tests add
    /// their test-only kernel module so. Its kernels run on this device's memory (both libraries allocate from malloc).
    /// </summary>
    public void AddKernelLibrary(EmulatorLibrary added)
    {
        ArgumentNullException.ThrowIfNull(added);
        ThrowIfDisposed();
        addedLibraries.Add(added);
    }

    /// <summary>
    /// <see cref="EmulatorLibrary.ReverseThreadOrder"/> of this device's library and the added ones (process-wide): run a
    /// kernel's tests in both orders to expose a missing barrier.
    /// </summary>
    public bool ReverseThreadOrder
    {
        get => library.ReverseThreadOrder;
        set
        {
            library.ReverseThreadOrder = value;
            foreach (var added in addedLibraries) added.ReverseThreadOrder = value;
        }
    }

    /// <summary>Runs the launch to completion before returning.</summary>
    /// <exception cref="CudaException">The kernel failed (assert, __trap, deadlock) or the launch is malformed.</exception>
    public void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount)
    {
        int begin = profiler?.Begin() ?? 0;
        ArgumentNullException.ThrowIfNull(kernel);
        ThrowIfDisposed();
        if (argumentCount < 0 || (argumentCount > 0 && arguments == null))
            throw new ArgumentException($"Launch of {kernel.Name}: {argumentCount} arguments but no argument pointer array.", nameof(arguments));
        var (holder, index) = launchable[(int)kernel.Handle];
        string? error = holder.Launch(index, grid, block, sharedMemoryBytes, arguments, argumentCount);
        if (error is not null) throw new CudaException($"Emulated launch of {kernel.Name} (grid {Format(grid)}, block {Format(block)}, {sharedMemoryBytes} bytes shared) failed: {error}");
        profiler?.End(DeviceOp.Kernel(kernel.Name), begin);
    }

    public void Gemm(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount = 1)
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        EmulatedGemm.Run(m, n, k, alpha, a, b, beta, c, batchCount);
        profiler?.End(DeviceOp.Gemm(DeviceOpKind.GemmFp32, m, n, k, a.Transposed, b.Transposed, batchCount), begin);
    }

    public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, int batchCount = 1)
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        EmulatedGemm.RunBf16(m, n, k, alpha, a, b, beta, c, batchCount);
        profiler?.End(DeviceOp.Gemm(DeviceOpKind.GemmBf16, m, n, k, a.Transposed, b.Transposed, batchCount), begin);
    }

    public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, int batchCount = 1)
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        EmulatedGemm.RunBf16(m, n, k, alpha, a, b, beta, c, batchCount);
        profiler?.End(DeviceOp.Gemm(DeviceOpKind.GemmBf16ToBf16, m, n, k, a.Transposed, b.Transposed, batchCount), begin);
    }

    public void GemmEpilogue(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue)
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        EmulatedGemmEpilogue.Run(m, n, k, alpha, a, b, beta, c, d, epilogue);
        profiler?.End(DeviceOp.GemmWithEpilogue(GemmEpilogueOps.Label(GemmEpilogueOps.Arithmetic.Fp32, false, epilogue.Kind), m, n, k, a.Transposed, b.Transposed), begin);
    }

    public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue)
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        EmulatedGemmEpilogue.Run(m, n, k, alpha, a, b, beta, c, d, epilogue);
        profiler?.End(DeviceOp.GemmWithEpilogue(GemmEpilogueOps.Label(GemmEpilogueOps.Arithmetic.Bf16, false, epilogue.Kind), m, n, k, a.Transposed, b.Transposed), begin);
    }

    public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, Bf16GemmOperand d, GemmEpilogue<ushort> epilogue)
    {
        int begin = profiler?.Begin() ?? 0;
        ThrowIfDisposed();
        EmulatedGemmEpilogue.Run(m, n, k, alpha, a, b, beta, c, d, epilogue);
        profiler?.End(DeviceOp.GemmWithEpilogue(GemmEpilogueOps.Label(GemmEpilogueOps.Arithmetic.Bf16, true, epilogue.Kind), m, n, k, a.Transposed, b.Transposed), begin);
    }

    public void Synchronize() => ThrowIfDisposed();

    private DeviceProfiler? profiler;

    public DeviceProfiler? Profiler => profiler;

    /// <summary>Times each op on the host clock: an emulated op has finished when its call returns.</summary>
    public DeviceProfiler StartProfiling()
    {
        ThrowIfDisposed();
        StopProfiling();
        profiler = new DeviceProfiler(new HostProfileClock());
        return profiler;
    }

    public void StopProfiling()
    {
        profiler?.Dispose();
        profiler = null;
    }

    /// <summary>Frees every allocation still alive (as destroying a CUDA context does).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        StopProfiling();
        foreach (ulong address in allocations.Keys) library.Free((void*)address);
        allocations.Clear();
        AllocatedBytes = 0;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    private static string Format(Dim3 d) => $"({d.X},{d.Y},{d.Z})";

    private static void RequireSameLength(long from, long to, string direction)
    {
        if (from != to) throw new ArgumentException($"Copy {direction} of {from} elements into {to}: the lengths must match (slice one side first).");
    }
}

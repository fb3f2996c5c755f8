using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

// The project's kernel module and launches.
public sealed unsafe partial class CudaDevice
{
    /// <summary>Dynamic shared memory a launch may use without opting in (cudaFuncAttributeMaxDynamicSharedMemorySize).</summary>
    public const uint DefaultDynamicSharedMemoryLimit = 48 * 1024;

    public const string KernelsNotBuiltMessage = "kernels were not built: run ./build.sh kernels (needs nvcc)";

    private readonly Func<string?>? loadPtx;
    private readonly Func<ComputeCapability, byte[]?>? loadCubin;
    private CudaModule? module;
    private readonly List<CudaModule> addedModules = [];
    // The dynamic shared memory limit already raised per kernel, so the attribute is set once, not every launch.
    private readonly Dictionary<nint, uint> dynamicSharedLimits = [];

    /// <summary>The project's kernel module, loaded (JIT-compiled) on first use.</summary>
    /// <exception cref="CudaException">The kernels were not built, or the driver cannot load them (with the JIT log).</exception>
    public CudaModule Kernels
    {
        get
        {
            ThrowIfDisposed();
            if (module is not null) return module;
            // A cubin prebuilt for this architecture loads in milliseconds; the PTX JIT of the whole module takes
            // seconds. A cubin the driver refuses (e.g. built for another minor architecture) falls back to the PTX.
            if (loadCubin?.Invoke(ComputeCapability) is { } cubin)
            {
                try
                {
                    module = CudaModule.LoadBinary(this, cubin, $"kernel module (sm_{ComputeCapability.Major}{ComputeCapability.Minor} cubin)");
                    return module;
                }
                catch (CudaException) when (loadPtx is not null)
                {
                }
            }
            string? ptx = loadPtx?.Invoke();
            if (ptx is null) throw new CudaException(KernelsNotBuiltMessage);
            module = CudaModule.Load(this, ptx, "kernel module");
            return module;
        }
    }

    /// <summary>The kernel <paramref name="name"/> of the project's module, or else of a module added by <see cref="AddKernelModule"/>.</summary>
    public KernelFunction GetKernel(string name)
    {
        if (addedModules.Count == 0) return Kernels.GetFunction(name);
        if (Kernels.TryGetFunction(name) is { } kernel) return kernel;
        foreach (var added in addedModules)
            if (added.TryGetFunction(name) is { } found) return found;
        return Kernels.GetFunction(name);
    }

    /// <summary>
    /// Lets <see cref="GetKernel"/> (so the launch stubs) find the kernels of <paramref name="added"/> too: the tests
    /// add their test-only kernel module so. The device owns it from here and disposes it with the context.
    /// </summary>
    public void AddKernelModule(CudaModule added)
    {
        ArgumentNullException.ThrowIfNull(added);
        ThrowIfDisposed();
        addedModules.Add(added);
    }

    /// <summary>Loads another module from PTX text into this device's context (tests, tools, the doctor's launch check).</summary>
    public CudaModule LoadModule(string ptx, string origin = "PTX module")
    {
        ArgumentNullException.ThrowIfNull(ptx);
        ThrowIfDisposed();
        return CudaModule.Load(this, ptx, origin);
    }

    /// <summary>
    /// Queues <paramref name="kernel"/> on the device's stream; <paramref name="arguments"/> points to one pointer per
    /// kernel parameter, each to the parameter's value. Returns without waiting: a fault inside the kernel is reported
    /// by the next call that waits (a copy to the host, <see cref="Synchronize"/>).
    /// </summary>
    public void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount)
    {
        if (profiler is null) { LaunchNow(kernel, grid, block, sharedMemoryBytes, arguments, argumentCount); return; }
        int begin = profiler.Begin();
        LaunchNow(kernel, grid, block, sharedMemoryBytes, arguments, argumentCount);
        profiler.End(DeviceOp.Kernel(kernel.Name), begin);
    }

    private void LaunchNow(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount)
    {
        ulong threads = (ulong)block.X * block.Y * block.Z;
        if (threads == 0 || threads > (ulong)kernel.MaxThreadsPerBlock || grid.X == 0 || grid.Y == 0 || grid.Z == 0)
            throw LaunchShapeError(kernel, grid, block, threads);
        if (argumentCount < 0 || (argumentCount > 0 && arguments == null))
            throw new ArgumentException($"Launch of {kernel.Name}: {argumentCount} arguments but no argument pointer array.", nameof(arguments));
        MakeCurrent();
        if (sharedMemoryBytes > DefaultDynamicSharedMemoryLimit) AllowDynamicSharedMemory(kernel, sharedMemoryBytes);
        var result = CudaDriver.cuLaunchKernel(kernel.Handle, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
            sharedMemoryBytes, streamValue, argumentCount == 0 ? null : arguments, null);
        if (result != CuResult.Success)
            throw CudaCheck.Failure(result, $"cuLaunchKernel({kernel.Name}, grid {Format(grid)}, block {Format(block)}, {sharedMemoryBytes} bytes shared)");
    }

    private void AllowDynamicSharedMemory(KernelFunction kernel, uint bytes)
    {
        if (dynamicSharedLimits.TryGetValue(kernel.Handle, out uint allowed) && allowed >= bytes) return;
        if (bytes > (uint)Info.MaxSharedMemoryPerBlockOptin)
            throw new CudaException($"Launch of {kernel.Name} asks for {bytes} bytes of dynamic shared memory, but {Name} allows at most " +
                                    $"{Info.MaxSharedMemoryPerBlockOptin} per block — use smaller tiles for this GPU");
        var result = CudaDriver.cuFuncSetAttribute(kernel.Handle, CuFunctionAttribute.MaxDynamicSharedSizeBytes, (int)bytes);
        if (result != CuResult.Success)
            throw CudaCheck.Failure(result, $"cuFuncSetAttribute({kernel.Name}, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes})",
                "the kernel's static shared memory plus this dynamic amount exceeds the per-block limit");
        dynamicSharedLimits[kernel.Handle] = bytes;
    }

    internal void ForgetKernel(KernelFunction kernel) => dynamicSharedLimits.Remove(kernel.Handle);

    private static CudaException LaunchShapeError(KernelFunction kernel, Dim3 grid, Dim3 block, ulong threads) =>
        threads > (ulong)kernel.MaxThreadsPerBlock
            ? new CudaException($"Launch of {kernel.Name} with block {Format(block)} ({threads} threads) exceeds the kernel's limit of " +
                                $"{kernel.MaxThreadsPerBlock} threads per block (set by its registers or __launch_bounds__) — use a smaller block")
            : new CudaException($"Launch of {kernel.Name} with grid {Format(grid)} and block {Format(block)}: every dimension must be at least 1 " +
                                "(an empty problem should skip the launch)");

    private static string Format(Dim3 d) => $"({d.X}, {d.Y}, {d.Z})";
}

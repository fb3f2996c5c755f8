using System.Runtime.InteropServices;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

/// <summary>
/// One NVIDIA GPU through the CUDA driver API: its primary context, one non-blocking stream on which every copy,
/// memset, launch and GEMM is queued in order, and one cuBLAS handle bound to that stream. Only the copies to the
/// host, <see cref="Synchronize"/> and event waits block. Not thread-safe: drive a device from one thread at a time
/// (any thread; each call makes the context current where needed).
/// </summary>
public sealed unsafe partial class CudaDevice : IComputeDevice
{
    // The context last made current on this thread by any CudaDevice, so the hot path skips cuCtxSetCurrent.
    [ThreadStatic] private static nint currentContext;

    private readonly PrimaryContextHandle context;
    private readonly StreamHandle stream;
    private readonly CublasHandle blas;
    private readonly nint contextValue, streamValue, blasValue;
    private bool allowTf32;
    private bool disposed;

    private CudaDevice(CudaDeviceInfo info, int driverVersion, PrimaryContextHandle context, StreamHandle stream, CublasHandle blas,
        int cublasVersion, Func<string?>? loadPtx, Func<ComputeCapability, byte[]?>? loadCubin)
    {
        Info = info;
        DriverVersion = driverVersion;
        this.context = context;
        this.stream = stream;
        this.blas = blas;
        contextValue = context.DangerousGetHandle();
        streamValue = stream.DangerousGetHandle();
        blasValue = blas.DangerousGetHandle();
        CublasVersion = cublasVersion;
        this.loadPtx = loadPtx;
        this.loadCubin = loadCubin;
    }

    /// <summary>
    /// Opens GPU <paramref name="ordinal"/>. <paramref name="loadPtx"/> supplies the kernel module's PTX text (or null
    /// when the kernels were not built); it is called once, on the first <see cref="GetKernel"/>. <paramref name="loadCubin"/>
    /// may supply a cubin prebuilt for the GPU's compute capability, which is tried first (no JIT).
    /// </summary>
    /// <exception cref="CudaException">No driver, no such GPU, cuBLAS missing or failing to start.</exception>
    public static CudaDevice Open(int ordinal = 0, Func<string?>? loadPtx = null, Func<ComputeCapability, byte[]?>? loadCubin = null)
    {
        CudaDriverProbe.Initialize();
        var info = QueryDevice(ordinal);
        int driverVersion = CudaDriverProbe.TryGetDriverVersion() ?? 0;

        PrimaryContextHandle? context = null;
        StreamHandle? stream = null;
        CublasHandle? blas = null;
        try
        {
            nint ctx;
            CudaCheck.Driver(CudaDriver.cuDevicePrimaryCtxRetain(&ctx, ordinal), $"cuDevicePrimaryCtxRetain(device {ordinal})");
            context = new PrimaryContextHandle(ctx, ordinal);
            CudaCheck.Driver(CudaDriver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
            currentContext = ctx;

            nint rawStream;
            CudaCheck.Driver(CudaDriver.cuStreamCreate(&rawStream, CuStreamFlags.NonBlocking), "cuStreamCreate(CU_STREAM_NON_BLOCKING)");
            stream = new StreamHandle(context, rawStream);

            blas = CreateCublas(context, rawStream, out int cublasVersion);
            return new CudaDevice(info, driverVersion, context, stream, blas, cublasVersion, loadPtx, loadCubin);
        }
        catch
        {
            blas?.Dispose();
            stream?.Dispose();
            context?.Dispose();
            throw;
        }
    }

    /// <summary>Whether a GPU can be opened here; <paramref name="reason"/> says why not (no driver, no GPU).</summary>
    public static bool IsAvailable(out string? reason)
    {
        if (!CudaDriverProbe.TryInitialize(out reason)) return false;
        int count = 0;
        var result = CudaDriver.cuDeviceGetCount(&count);
        if (result != CuResult.Success) { reason = CudaCheck.Failure(result, "cuDeviceGetCount").Message; return false; }
        if (count == 0) { reason = "the NVIDIA driver is installed but sees no GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES"; return false; }
        return true;
    }

    /// <summary>Every GPU the driver sees.</summary>
    /// <exception cref="CudaException">No driver.</exception>
    public static IReadOnlyList<CudaDeviceInfo> QueryDevices()
    {
        CudaDriverProbe.Initialize();
        int count = 0;
        CudaCheck.Driver(CudaDriver.cuDeviceGetCount(&count), "cuDeviceGetCount");
        var devices = new CudaDeviceInfo[count];
        for (int i = 0; i < count; i++) devices[i] = QueryDevice(i);
        return devices;
    }

    public string Kind => "cuda";
    public CudaDeviceInfo Info { get; }
    public int Ordinal => Info.Ordinal;
    public string Name => Info.Name;
    public ComputeCapability ComputeCapability => Info.ComputeCapability;
    /// <summary>cuDriverGetVersion, e.g. 13000 for CUDA 13.0.</summary>
    public int DriverVersion { get; }
    /// <summary>cublasGetVersion_v2, e.g. 130100 for cuBLAS 13.1.0.</summary>
    public int CublasVersion { get; }
    /// <summary>The libcublas file that loaded.</summary>
    public string? CublasLibrary => NativeLibraryResolver.LoadedFrom(CudaLibraries.CublasImportName);

    public string Description =>
        $"{Info.Name} (GPU {Info.Ordinal}, compute capability {Info.ComputeCapability}, {Info.MultiprocessorCount} SMs, " +
        $"{Info.TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB; driver {FormatVersion(DriverVersion)}, cuBLAS {FormatCublasVersion(CublasVersion)})";

    /// <summary>
    /// Lets cuBLAS run fp32 GEMMs on TF32 tensor cores (about 10 significant bits per input). Off by default so
    /// results match the CPU reference to fp32 rounding.
    /// </summary>
    public bool AllowTf32
    {
        get => allowTf32;
        set
        {
            ThrowIfDisposed();
            var mode = value ? CublasMath.Tf32TensorOp : CublasMath.Default;
            CudaCheck.Blas(Cublas.cublasSetMathMode(blasValue, mode), $"cublasSetMathMode({(value ? "CUBLAS_TF32_TENSOR_OP_MATH" : "CUBLAS_DEFAULT_MATH")})");
            allowTf32 = value;
        }
    }

    public DeviceMemoryInfo MemoryInfo
    {
        get
        {
            MakeCurrent();
            nuint free, total;
            CudaCheck.Driver(CudaDriver.cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2");
            return new DeviceMemoryInfo((long)free, (long)total);
        }
    }

    public long FreeMemoryBytes => MemoryInfo.FreeBytes;

    public DeviceBuffer<T> Allocate<T>(long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0) return new DeviceBuffer<T>(this, 0, 0);
        long bytes = checked(count * sizeof(T));
        MakeCurrent();
        ulong address;
        var result = CudaDriver.cuMemAlloc_v2(&address, (nuint)bytes);
        if (result != CuResult.Success)
            throw CudaCheck.Failure(result, $"cuMemAlloc_v2({bytes} bytes)", result == CuResult.OutOfMemory ? OutOfMemoryDetail(bytes) : null);
        return new DeviceBuffer<T>(this, address, count);
    }

    public void Free(ulong address)
    {
        // After Dispose the context is gone and took its allocations with it.
        if (disposed || address == 0) return;
        MakeCurrent();
        var result = CudaDriver.cuMemFree_v2(address);
        // Only a bad pointer is the caller's bug. Any other error is a sticky fault from an earlier kernel that was
        // already reported where the host waited; throwing it again from a Dispose would hide that first exception.
        if (result == CuResult.InvalidValue) throw CudaCheck.Failure(result, $"cuMemFree_v2(0x{address:x})", "the address was freed twice or never allocated here");
    }

    /// <summary>Waits for everything queued on the device's stream.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        var result = CudaDriver.cuStreamSynchronize(streamValue);
        if (result != CuResult.Success) throw CudaCheck.Failure(result, "cuStreamSynchronize");
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        // Let queued work finish so nothing in flight touches what is released below; an error here was (or will be)
        // reported by the call that waits, so it is not rethrown from Dispose.
        if (currentContext != contextValue && CudaDriver.cuCtxSetCurrent(contextValue) == CuResult.Success) currentContext = contextValue;
        CudaDriver.cuStreamSynchronize(streamValue);
        profiler?.Dispose();
        module?.Dispose();
        foreach (var added in addedModules) added.Dispose();
        DisposeLt();
        blas.Dispose();
        stream.Dispose();
        context.Dispose();
        if (currentContext == contextValue) currentContext = 0;
    }

    internal nint StreamValue => streamValue;

    internal void MakeCurrent()
    {
        ThrowIfDisposed();
        if (currentContext == contextValue) return;
        CudaCheck.Driver(CudaDriver.cuCtxSetCurrent(contextValue), "cuCtxSetCurrent");
        currentContext = contextValue;
    }

    internal PrimaryContextHandle Context => context;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    private string OutOfMemoryDetail(long requestedBytes)
    {
        nuint free, total;
        if (CudaDriver.cuMemGetInfo_v2(&free, &total) != CuResult.Success) return $"{requestedBytes / MiB:F0} MiB requested";
        return $"{requestedBytes / MiB:F0} MiB requested, {(long)free / MiB:F0} MiB free of {(long)total / MiB:F0} MiB on GPU {Ordinal} ({Name})";
    }

    private const double MiB = 1024.0 * 1024;

    private static CublasHandle CreateCublas(PrimaryContextHandle context, nint rawStream, out int version)
    {
        nint raw;
        CublasStatus status;
        try
        {
            status = Cublas.cublasCreate_v2(&raw);
        }
        catch (DllNotFoundException)
        {
            throw new CudaException(
                $"cuBLAS not found: {NativeLibraryResolver.DescribeAttempts(CudaLibraries.CublasImportName)} — install cuBLAS " +
                $"(the CUDA toolkit, the libcublas package, or pip's nvidia-cublas) or set {CudaLibraries.LibraryDirectoryVariable} to the directory holding libcublas.so.N");
        }
        CudaCheck.Blas(status, $"cublasCreate_v2 (from {NativeLibraryResolver.LoadedFrom(CudaLibraries.CublasImportName)})");
        var handle = new CublasHandle(context, raw);
        try
        {
            CudaCheck.Blas(Cublas.cublasSetStream_v2(raw, rawStream), "cublasSetStream_v2");
            CudaCheck.Blas(Cublas.cublasSetMathMode(raw, CublasMath.Default), "cublasSetMathMode(CUBLAS_DEFAULT_MATH)");
            int v = 0;
            CudaCheck.Blas(Cublas.cublasGetVersion_v2(raw, &v), "cublasGetVersion_v2");
            version = v;
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static CudaDeviceInfo QueryDevice(int ordinal)
    {
        int count = 0;
        CudaCheck.Driver(CudaDriver.cuDeviceGetCount(&count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count)
            throw new CudaException($"GPU {ordinal} does not exist: the driver sees {count} GPU{(count == 1 ? "" : "s")} (ordinals 0..{count - 1}) — " +
                                    "pick another GPU ordinal (`gpu`), or check CUDA_VISIBLE_DEVICES and `softprompt doctor`");
        int device;
        CudaCheck.Driver(CudaDriver.cuDeviceGet(&device, ordinal), $"cuDeviceGet({ordinal})");
        byte* name = stackalloc byte[256];
        CudaCheck.Driver(CudaDriver.cuDeviceGetName(name, 256, device), $"cuDeviceGetName(device {ordinal})");
        nuint total;
        CudaCheck.Driver(CudaDriver.cuDeviceTotalMem_v2(&total, device), $"cuDeviceTotalMem_v2(device {ordinal})");
        return new CudaDeviceInfo(
            ordinal,
            Marshal.PtrToStringUTF8((nint)name) ?? "unknown GPU",
            new ComputeCapability(Attribute(device, CuDeviceAttribute.ComputeCapabilityMajor), Attribute(device, CuDeviceAttribute.ComputeCapabilityMinor)),
            Attribute(device, CuDeviceAttribute.MultiprocessorCount),
            (long)total,
            Attribute(device, CuDeviceAttribute.MaxThreadsPerBlock),
            Attribute(device, CuDeviceAttribute.MaxSharedMemoryPerBlock),
            Attribute(device, CuDeviceAttribute.MaxSharedMemoryPerBlockOptin),
            Attribute(device, CuDeviceAttribute.L2CacheSize),
            Attribute(device, CuDeviceAttribute.ClockRate));
    }

    private static int Attribute(int device, CuDeviceAttribute attribute)
    {
        int value = 0;
        CudaCheck.Driver(CudaDriver.cuDeviceGetAttribute(&value, attribute, device), $"cuDeviceGetAttribute({attribute}, device {device})");
        return value;
    }

    /// <summary>13000 → "13.0".</summary>
    public static string FormatVersion(int cudaVersion) => $"{cudaVersion / 1000}.{cudaVersion % 1000 / 10}";

    /// <summary>CUBLAS_VERSION is major·10000 + minor·100 + patch: 120804 → "12.8.4".</summary>
    public static string FormatCublasVersion(int version) => $"{version / 10000}.{version / 100 % 100}.{version % 100}";
}

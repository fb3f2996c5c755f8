using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

/// <summary>
/// Raw CUDA driver API entry points, exactly as exported by libcuda.so.1. Names carry the _v2 suffix where cuda.h
/// maps the plain name to it (the unsuffixed symbols are the legacy 32-bit-size ABI). CUdevice is int, CUdeviceptr
/// is 64-bit, every other CU* handle is an opaque pointer. Callers check results through <see cref="CudaCheck"/>.
/// </summary>
internal static unsafe partial class CudaDriver
{
    public const string Library = "libcuda.so.1";

    // Registering first means the resolver (not the default probe) answers for libcuda, so doctor can say which file loaded.
    static CudaDriver() => CudaLibraries.EnsureRegistered();

    [LibraryImport(Library)] public static partial CuResult cuInit(uint flags);
    [LibraryImport(Library)] public static partial CuResult cuDriverGetVersion(int* driverVersion);
    [LibraryImport(Library)] public static partial CuResult cuGetErrorName(CuResult error, byte** name);
    [LibraryImport(Library)] public static partial CuResult cuGetErrorString(CuResult error, byte** description);

    [LibraryImport(Library)] public static partial CuResult cuDeviceGetCount(int* count);
    [LibraryImport(Library)] public static partial CuResult cuDeviceGet(int* device, int ordinal);
    [LibraryImport(Library)] public static partial CuResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library)] public static partial CuResult cuDeviceGetAttribute(int* value, CuDeviceAttribute attribute, int device);
    [LibraryImport(Library)] public static partial CuResult cuDeviceTotalMem_v2(nuint* bytes, int device);

    [LibraryImport(Library)] public static partial CuResult cuDevicePrimaryCtxRetain(nint* context, int device);
    [LibraryImport(Library)] public static partial CuResult cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Library)] public static partial CuResult cuCtxSetCurrent(nint context);
    [LibraryImport(Library)] public static partial CuResult cuCtxGetCurrent(nint* context);
    [LibraryImport(Library)] public static partial CuResult cuCtxSynchronize();

    [LibraryImport(Library)] public static partial CuResult cuMemGetInfo_v2(nuint* free, nuint* total);
    [LibraryImport(Library)] public static partial CuResult cuMemAlloc_v2(ulong* address, nuint bytes);
    [LibraryImport(Library)] public static partial CuResult cuMemFree_v2(ulong address);
    [LibraryImport(Library)] public static partial CuResult cuMemAllocHost_v2(void** host, nuint bytes);
    [LibraryImport(Library)] public static partial CuResult cuMemFreeHost(void* host);

    [LibraryImport(Library)] public static partial CuResult cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(Library)] public static partial CuResult cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(Library)] public static partial CuResult cuMemcpyDtoD_v2(ulong destination, ulong source, nuint bytes);
    [LibraryImport(Library)] public static partial CuResult cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Library)] public static partial CuResult cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library)] public static partial CuResult cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library)] public static partial CuResult cuMemsetD8_v2(ulong destination, byte value, nuint count);
    // The async memsets never had a _v2: they were added after the 64-bit size switch.
    [LibraryImport(Library)] public static partial CuResult cuMemsetD8Async(ulong destination, byte value, nuint count, nint stream);
    [LibraryImport(Library)] public static partial CuResult cuMemsetD32Async(ulong destination, uint value, nuint count, nint stream);

    [LibraryImport(Library)] public static partial CuResult cuModuleLoadDataEx(nint* module, void* image, uint optionCount, CuJitOption* options, void** optionValues);
    [LibraryImport(Library)] public static partial CuResult cuModuleUnload(nint module);
    [LibraryImport(Library)] public static partial CuResult cuModuleGetFunction(nint* function, nint module, byte* name);
    [LibraryImport(Library)] public static partial CuResult cuFuncGetAttribute(int* value, CuFunctionAttribute attribute, nint function);
    [LibraryImport(Library)] public static partial CuResult cuFuncSetAttribute(nint function, CuFunctionAttribute attribute, int value);
    [LibraryImport(Library)]
    public static partial CuResult cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, nint stream, void** kernelParams, void** extra);

    [LibraryImport(Library)] public static partial CuResult cuStreamCreate(nint* stream, uint flags);
    [LibraryImport(Library)] public static partial CuResult cuStreamDestroy_v2(nint stream);
    [LibraryImport(Library)] public static partial CuResult cuStreamSynchronize(nint stream);

    [LibraryImport(Library)] public static partial CuResult cuEventCreate(nint* evt, uint flags);
    [LibraryImport(Library)] public static partial CuResult cuEventRecord(nint evt, nint stream);
    [LibraryImport(Library)] public static partial CuResult cuEventSynchronize(nint evt);
    [LibraryImport(Library)] public static partial CuResult cuEventElapsedTime(float* milliseconds, nint start, nint end);
    [LibraryImport(Library)] public static partial CuResult cuEventDestroy_v2(nint evt);
}

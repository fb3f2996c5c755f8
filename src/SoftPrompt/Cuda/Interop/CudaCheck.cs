using System.Runtime.InteropServices;
using System.Text;

namespace SoftPrompt.Cuda.Interop;

/// <summary>
/// Turns CUresult and cublasStatus_t codes into <see cref="CudaException"/>s whose message reads
/// "call failed: NAME (description) — fix". Only the failure path allocates.
/// </summary>
internal static unsafe class CudaCheck
{
    public static void Driver(CuResult result, string call)
    {
        if (result != CuResult.Success) throw Failure(result, call);
    }

    public static void Blas(CublasStatus status, string call)
    {
        if (status != CublasStatus.Success) throw Failure(status, call);
    }

    /// <param name="extraHint">Said before the generic fix for the code (e.g. how much memory is free).</param>
    /// <param name="detail">Appended on its own lines after the fix (e.g. the JIT log).</param>
    public static CudaException Failure(CuResult result, string call, string? extraHint = null, string? detail = null)
    {
        var (name, description) = DescribeDriverError(result);
        string message = Format(call, name, description, Join(extraHint, DriverHint(result)));
        if (!string.IsNullOrWhiteSpace(detail)) message += Environment.NewLine + detail.TrimEnd();
        return new CudaException(call, result, message);
    }

    public static CudaException Failure(CublasStatus status, string call, string? extraHint = null) =>
        new(call, status, Format(call, CublasStatusName(status), CublasStatusDescription(status), Join(extraHint, CublasHint(status))));

    /// <summary>"call failed: NAME (description) — hint", leaving out the parts that are missing.</summary>
    public static string Format(string call, string name, string? description, string? hint)
    {
        var text = new StringBuilder(call).Append(" failed: ").Append(name);
        if (!string.IsNullOrEmpty(description)) text.Append(" (").Append(description).Append(')');
        if (!string.IsNullOrEmpty(hint)) text.Append(" — ").Append(hint);
        return text.ToString();
    }

    /// <summary>The driver's own name and description when the driver is loaded, else a name derived from the code.</summary>
    public static (string Name, string? Description) DescribeDriverError(CuResult result)
    {
        if (CudaDriverProbe.IsDriverLoadable)
        {
            byte* name = null, description = null;
            if (CudaDriver.cuGetErrorName(result, &name) == CuResult.Success && name != null)
            {
                CudaDriver.cuGetErrorString(result, &description);
                return (Marshal.PtrToStringUTF8((nint)name) ?? FallbackName(result),
                        description == null ? null : Marshal.PtrToStringUTF8((nint)description));
            }
        }
        return (FallbackName(result), null);
    }

    public static string FallbackName(CuResult result) => result switch
    {
        CuResult.Success => "CUDA_SUCCESS",
        _ when Enum.IsDefined(result) => "CUDA_ERROR_" + UpperSnake(result.ToString()),
        _ => $"CUDA_ERROR_{(int)result}",
    };

    public static string CublasStatusName(CublasStatus status) =>
        Enum.IsDefined(status) ? "CUBLAS_STATUS_" + UpperSnake(status.ToString()) : $"CUBLAS_STATUS_{(int)status}";

    // cublasGetStatusString only exists from cuBLAS 11.4 on; these mirror its texts.
    public static string? CublasStatusDescription(CublasStatus status) => status switch
    {
        CublasStatus.NotInitialized => "the library was not initialized",
        CublasStatus.AllocFailed => "the resource allocation failed",
        CublasStatus.InvalidValue => "an invalid numeric value was used as an argument",
        CublasStatus.ArchMismatch => "an absent device architectural feature is required",
        CublasStatus.MappingError => "an access to GPU memory space failed",
        CublasStatus.ExecutionFailed => "the GPU program failed to execute",
        CublasStatus.InternalError => "an internal operation failed",
        CublasStatus.NotSupported => "the functionality requested is not supported",
        CublasStatus.LicenseError => "error detected trying to check the license",
        _ => null,
    };

    public const string KernelFaultHint =
        "a kernel queued earlier faulted (errors surface at the next call that waits) and the GPU context is now unusable: " +
        "rerun with CUDA_LAUNCH_BLOCKING=1 or under compute-sanitizer to find the kernel, or debug it on the `device` cuda-emulated";

    public const string OutOfMemoryHint =
        "reduce `TrainOptions.BatchSize` or the sequence length, turn on activation recomputation, or stop other processes using the GPU (nvidia-smi)";

    public static string? DriverHint(CuResult result) => result switch
    {
        CuResult.OutOfMemory => OutOfMemoryHint,
        CuResult.NoDevice => "the driver sees no GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES",
        CuResult.InvalidDevice => "no GPU has that ordinal: `softprompt doctor` lists the GPUs present",
        CuResult.StubLibrary => "libcuda.so.1 that loaded is the toolkit's stub, not the driver: remove the stubs directory from LD_LIBRARY_PATH",
        CuResult.SystemDriverMismatch => "the driver library and the kernel module differ in version: reboot or reinstall the NVIDIA driver",
        CuResult.CompatNotSupportedOnDevice => "the CUDA forward-compatibility package does not support this GPU: remove it from LD_LIBRARY_PATH",
        CuResult.DeviceUnavailable => "the GPU is busy or in exclusive-process mode with another process: check nvidia-smi",
        CuResult.InvalidPtx or CuResult.UnsupportedPtxVersion or CuResult.NoBinaryForGpu or CuResult.InvalidImage =>
            "the kernel module does not suit this driver or GPU: rebuild it with ./build.sh kernels using an nvcc no newer than the driver (see `softprompt doctor`)",
        CuResult.JitCompilerNotFound => "the driver's PTX JIT (libnvidia-ptxjitcompiler) is missing: reinstall the NVIDIA driver",
        CuResult.IllegalAddress or CuResult.LaunchFailed or CuResult.MisalignedAddress or CuResult.IllegalInstruction
            or CuResult.InvalidPc or CuResult.Assert => KernelFaultHint,
        CuResult.LaunchTimeout => "a kernel ran past the display watchdog: use a GPU without a display attached, or smaller batches",
        CuResult.LaunchOutOfResources => "the launch needs more registers or threads than a block may have: lower the block size",
        CuResult.InvalidContext or CuResult.ContextIsDestroyed => "the device was disposed, or its context is not current on this thread",
        CuResult.NotInitialized or CuResult.Deinitialized => "the driver is not initialized or is shutting down: open devices through CudaDevice.Open",
        _ => null,
    };

    public static string? CublasHint(CublasStatus status) => status switch
    {
        CublasStatus.NotInitialized =>
            $"cuBLAS could not start: this cuBLAS may be newer than the driver (libcublas.so.13 needs a CUDA 13 driver); point {CudaLibraries.LibraryDirectoryVariable} at an older one",
        CublasStatus.AllocFailed => OutOfMemoryHint,
        CublasStatus.ArchMismatch => "this GPU lacks the feature the call needs (bf16 GEMMs need compute capability 8.0 or newer)",
        CublasStatus.InvalidValue => "the GEMM's shapes, leading dimensions or strides are inconsistent (a bug in the caller)",
        CublasStatus.ExecutionFailed or CublasStatus.MappingError => KernelFaultHint,
        CublasStatus.NotSupported => "this combination of data types and compute type is not supported by this cuBLAS or GPU",
        _ => null,
    };

    private static string? Join(string? first, string? second) =>
        first is null ? second : second is null ? first : first + "; " + second;

    private static string UpperSnake(string pascal)
    {
        var text = new StringBuilder(pascal.Length + 8);
        for (int i = 0; i < pascal.Length; i++)
        {
            char c = pascal[i];
            if (i > 0 && char.IsUpper(c) && !char.IsUpper(pascal[i - 1])) text.Append('_');
            text.Append(char.ToUpperInvariant(c));
        }
        return text.ToString();
    }
}

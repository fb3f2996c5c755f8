namespace SoftPrompt.Cuda.Interop;

/// <summary>
/// Loads libcuda.so.1 and runs cuInit once per process. A machine without the NVIDIA driver is an ordinary
/// outcome here (a message), never a DllNotFoundException escaping from the first P/Invoke.
/// </summary>
internal static unsafe class CudaDriverProbe
{
    private static readonly Lock Gate = new();
    private static bool initialized;

    static CudaDriverProbe() => CudaLibraries.EnsureRegistered();

    public const string NoDriverFix =
        "install the NVIDIA driver (nvidia-smi must work) or use `device` cpu or cuda-emulated";

    public static bool IsDriverLoadable => NativeLibraryResolver.TryLoad(CudaLibraries.DriverImportName, out _);

    /// <summary>"no NVIDIA driver found: …" naming what was tried.</summary>
    public static string NoDriverMessage() =>
        $"no NVIDIA driver found: {CudaLibraries.DriverImportName} could not be loaded ({NativeLibraryResolver.DescribeAttempts(CudaLibraries.DriverImportName)}) — {NoDriverFix}";

    /// <summary>Loads the driver and calls cuInit(0) (once; a failure is retried on the next call).</summary>
    /// <summary>The driver initialised to "no device": a machine (or container) without a GPU, not a broken install.</summary>
    public static bool NoGpuPresent { get; private set; }

    public static bool TryInitialize(out string? failure)
    {
        lock (Gate)
        {
            failure = null;
            if (initialized) return true;
            if (!IsDriverLoadable)
            {
                failure = NoDriverMessage();
                return false;
            }
            var result = CudaDriver.cuInit(0);
            NoGpuPresent = result == CuResult.NoDevice;
            if (result != CuResult.Success)
            {
                // A driver's user-space libraries without its kernel module or a GPU (containers, CI) end up here.
                string? generic = CudaCheck.DriverHint(result) is null ? "nvidia-smi must work (kernel module loaded, /dev/nvidia* present)" : null;
                failure = "no usable NVIDIA GPU: the driver library loaded but " +
                          CudaCheck.Failure(result, "cuInit(0)", generic).Message + "; or use `device` cpu or cuda-emulated";
                return false;
            }
            initialized = true;
            return true;
        }
    }

    /// <summary>Throws the <see cref="CudaException"/> that <see cref="TryInitialize"/> describes.</summary>
    public static void Initialize()
    {
        if (!TryInitialize(out var failure)) throw new CudaException(failure!);
    }

    /// <summary>cuDriverGetVersion (e.g. 13000 for CUDA 13.0), or null without a driver. Needs no cuInit.</summary>
    public static int? TryGetDriverVersion()
    {
        if (!IsDriverLoadable) return null;
        int version = 0;
        return CudaDriver.cuDriverGetVersion(&version) == CuResult.Success ? version : null;
    }
}

namespace SoftPrompt.Cuda.Interop;

// Values from cuda.h (CUDA 11.8 headers; unchanged through CUDA 13). Only the members this layer uses or
// names in its hints; any other code is still reported by the driver's cuGetErrorName.

/// <summary>CUresult.</summary>
internal enum CuResult
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    Deinitialized = 4,
    StubLibrary = 34,
    DeviceUnavailable = 46,
    NoDevice = 100,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    NoBinaryForGpu = 209,
    InvalidPtx = 218,
    JitCompilerNotFound = 221,
    UnsupportedPtxVersion = 222,
    InvalidHandle = 400,
    NotFound = 500,
    NotReady = 600,
    IllegalAddress = 700,
    LaunchOutOfResources = 701,
    LaunchTimeout = 702,
    ContextIsDestroyed = 709,
    Assert = 710,
    IllegalInstruction = 715,
    MisalignedAddress = 716,
    InvalidPc = 718,
    LaunchFailed = 719,
    NotPermitted = 800,
    NotSupported = 801,
    SystemNotReady = 802,
    SystemDriverMismatch = 803,
    CompatNotSupportedOnDevice = 804,
    Unknown = 999,
}

/// <summary>CUdevice_attribute (the ones the device description and launch checks read).</summary>
internal enum CuDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    PciBusId = 33,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerMultiprocessor = 81,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary>CUfunction_attribute.</summary>
internal enum CuFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    ConstSizeBytes = 2,
    LocalSizeBytes = 3,
    NumRegs = 4,
    PtxVersion = 5,
    BinaryVersion = 6,
    MaxDynamicSharedSizeBytes = 8,
}

/// <summary>CUjit_option (the log options used by module loading).</summary>
internal enum CuJitOption
{
    WallTime = 2,
    InfoLogBuffer = 3,
    InfoLogBufferSizeBytes = 4,
    ErrorLogBuffer = 5,
    ErrorLogBufferSizeBytes = 6,
    LogVerbose = 12,
}

internal static class CuStreamFlags
{
    /// <summary>CU_STREAM_NON_BLOCKING: no implicit synchronization with the legacy NULL stream (which cuBLAS or other libraries may use).</summary>
    public const uint NonBlocking = 0x1;
}

internal static class CuEventFlags
{
    public const uint Default = 0x0;
    public const uint DisableTiming = 0x2;
}

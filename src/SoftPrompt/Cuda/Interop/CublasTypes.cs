namespace SoftPrompt.Cuda.Interop;

// Values from cublas_api.h and library_types.h (CUDA 11.8 headers; unchanged in cuBLAS 12 and 13).

/// <summary>cublasStatus_t.</summary>
internal enum CublasStatus
{
    Success = 0,
    NotInitialized = 1,
    AllocFailed = 3,
    InvalidValue = 7,
    ArchMismatch = 8,
    MappingError = 11,
    ExecutionFailed = 13,
    InternalError = 14,
    NotSupported = 15,
    LicenseError = 16,
}

/// <summary>cublasOperation_t.</summary>
internal enum CublasOperation
{
    N = 0,
    T = 1,
}

/// <summary>cublasMath_t.</summary>
internal enum CublasMath
{
    Default = 0,
    Pedantic = 2,
    Tf32TensorOp = 3,
}

/// <summary>cudaDataType_t.</summary>
internal enum CudaDataType
{
    R32F = 0,
    R16F = 2,
    R16BF = 14,
}

/// <summary>cublasComputeType_t.</summary>
internal enum CublasComputeType
{
    Compute32F = 68,
    Compute32FPedantic = 69,
    Compute32FFastTf32 = 77,
}

/// <summary>cublasGemmAlgo_t.</summary>
internal enum CublasGemmAlgo
{
    Default = -1,
}

/// <summary>libraryPropertyType_t.</summary>
internal enum LibraryProperty
{
    MajorVersion = 0,
    MinorVersion = 1,
    PatchLevel = 2,
}

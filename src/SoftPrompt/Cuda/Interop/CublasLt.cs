using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

/// <summary>
/// Raw cuBLASLt entry points: the matmul with an epilogue (bias, GELU, GELU's gradient) fused into the GEMM.
/// "cublasLt" is not a file name: <see cref="CudaLibraries"/> resolves it to libcublasLt.so.N of the cuBLAS that loaded.
/// Values and semantics: <see cref="CublasLtEpilogue"/>'s file.
/// </summary>
internal static unsafe partial class CublasLt
{
    public const string Library = CudaLibraries.CublasLtImportName;

    static CublasLt() => CudaLibraries.EnsureRegistered();

    [LibraryImport(Library)] public static partial CublasStatus cublasLtCreate(nint* handle);
    [LibraryImport(Library)] public static partial CublasStatus cublasLtDestroy(nint handle);

    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatmulDescCreate(nint* desc, CublasComputeType computeType, CudaDataType scaleType);
    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatmulDescDestroy(nint desc);
    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatmulDescSetAttribute(nint desc, CublasLtMatmulDescAttribute attribute, void* value, nuint size);

    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatrixLayoutCreate(nint* layout, CudaDataType type, ulong rows, ulong cols, long ld);
    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatrixLayoutDestroy(nint layout);

    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatmulPreferenceCreate(nint* preference);
    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatmulPreferenceDestroy(nint preference);
    [LibraryImport(Library)] public static partial CublasStatus cublasLtMatmulPreferenceSetAttribute(nint preference, CublasLtMatmulPreferenceAttribute attribute, void* value, nuint size);

    [LibraryImport(Library)]
    public static partial CublasStatus cublasLtMatmulAlgoGetHeuristic(nint handle, nint operationDesc, nint aDesc, nint bDesc, nint cDesc, nint dDesc,
        nint preference, int requestedAlgoCount, CublasLtMatmulHeuristicResult* results, int* returnAlgoCount);

    [LibraryImport(Library)]
    public static partial CublasStatus cublasLtMatmul(nint handle, nint computeDesc, void* alpha, ulong a, nint aDesc, ulong b, nint bDesc,
        void* beta, ulong c, nint cDesc, ulong d, nint dDesc, CublasLtMatmulAlgo* algo, ulong workspace, nuint workspaceBytes, nint stream);
}

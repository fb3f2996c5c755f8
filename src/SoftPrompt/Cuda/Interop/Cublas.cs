using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

/// <summary>
/// Raw cuBLAS entry points (the _v2 API: handle first, alpha/beta by pointer, host pointer mode by default).
/// "cublas" is not a file name: <see cref="CudaLibraries"/> resolves it to the newest libcublas.so.N found.
/// </summary>
internal static unsafe partial class Cublas
{
    public const string Library = CudaLibraries.CublasImportName;

    static Cublas() => CudaLibraries.EnsureRegistered();

    [LibraryImport(Library)] public static partial CublasStatus cublasCreate_v2(nint* handle);
    [LibraryImport(Library)] public static partial CublasStatus cublasDestroy_v2(nint handle);
    [LibraryImport(Library)] public static partial CublasStatus cublasGetVersion_v2(nint handle, int* version);
    [LibraryImport(Library)] public static partial CublasStatus cublasGetProperty(LibraryProperty type, int* value);
    [LibraryImport(Library)] public static partial CublasStatus cublasSetStream_v2(nint handle, nint stream);
    [LibraryImport(Library)] public static partial CublasStatus cublasSetMathMode(nint handle, CublasMath mode);

    [LibraryImport(Library)]
    public static partial CublasStatus cublasSgemm_v2(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        float* alpha, ulong a, int lda, ulong b, int ldb, float* beta, ulong c, int ldc);

    [LibraryImport(Library)]
    public static partial CublasStatus cublasSgemmStridedBatched(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        float* alpha, ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float* beta, ulong c, int ldc, long strideC, int batchCount);

    [LibraryImport(Library)]
    public static partial CublasStatus cublasGemmEx(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        void* alpha, ulong a, CudaDataType aType, int lda, ulong b, CudaDataType bType, int ldb,
        void* beta, ulong c, CudaDataType cType, int ldc, CublasComputeType computeType, CublasGemmAlgo algo);

    [LibraryImport(Library)]
    public static partial CublasStatus cublasGemmStridedBatchedEx(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        void* alpha, ulong a, CudaDataType aType, int lda, long strideA, ulong b, CudaDataType bType, int ldb, long strideB,
        void* beta, ulong c, CudaDataType cType, int ldc, long strideC, int batchCount, CublasComputeType computeType, CublasGemmAlgo algo);
}

using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

// GEMMs through cuBLAS on the device's stream. Row-major → column-major happens in GemmMapping only.
public sealed unsafe partial class CudaDevice
{
    /// <summary>Row-major fp32 C = alpha·op(A)·op(B) + beta·C (fp32 math unless <see cref="AllowTf32"/>); strided-batched when batchCount &gt; 1.</summary>
    public void Gemm(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount = 1)
    {
        if (profiler is null) { SgemmNow(m, n, k, alpha, a, b, beta, c, batchCount); return; }
        int begin = profiler.Begin();
        SgemmNow(m, n, k, alpha, a, b, beta, c, batchCount);
        profiler.End(DeviceOp.Gemm(allowTf32 ? DeviceOpKind.GemmTf32 : DeviceOpKind.GemmFp32, m, n, k, a.Transposed, b.Transposed, batchCount), begin);
    }

    private void SgemmNow(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount)
    {
        var g = GemmMapping.ToColumnMajor(m, n, k, Matrix(a.Data, a.LeadingDimension, a.Transposed, a.BatchStride),
            Matrix(b.Data, b.LeadingDimension, b.Transposed, b.BatchStride), Matrix(c.Data, c.LeadingDimension, c.Transposed, c.BatchStride), batchCount);
        if (g.IsEmpty) return;
        MakeCurrent();
        var status = g.BatchCount == 1
            ? Cublas.cublasSgemm_v2(blasValue, g.TransA, g.TransB, g.M, g.N, g.K, &alpha, g.A, g.Lda, g.B, g.Ldb, &beta, g.C, g.Ldc)
            : Cublas.cublasSgemmStridedBatched(blasValue, g.TransA, g.TransB, g.M, g.N, g.K, &alpha, g.A, g.Lda, g.StrideA,
                g.B, g.Ldb, g.StrideB, &beta, g.C, g.Ldc, g.StrideC, g.BatchCount);
        if (status != CublasStatus.Success) throw GemmFailure(status, g.BatchCount == 1 ? "cublasSgemm_v2" : "cublasSgemmStridedBatched", m, n, k, batchCount);
    }

    /// <summary>Row-major C (fp32) = alpha·op(A)·op(B) + beta·C with bf16 A and B, accumulated in fp32.</summary>
    public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, int batchCount = 1) =>
        GemmEx(m, n, k, alpha, a, b, beta, Matrix(c.Data, c.LeadingDimension, c.Transposed, c.BatchStride), CudaDataType.R32F, batchCount);

    /// <summary>Row-major C (bf16) = alpha·op(A)·op(B) + beta·C with bf16 A and B, accumulated in fp32 and rounded once.</summary>
    public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, int batchCount = 1) =>
        GemmEx(m, n, k, alpha, a, b, beta, Matrix(c.Data, c.LeadingDimension, c.Transposed, c.BatchStride), CudaDataType.R16BF, batchCount);

    private void GemmEx(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, RowMajorMatrix c, CudaDataType cType, int batchCount)
    {
        if (profiler is null) { GemmExNow(m, n, k, alpha, a, b, beta, c, cType, batchCount); return; }
        int begin = profiler.Begin();
        GemmExNow(m, n, k, alpha, a, b, beta, c, cType, batchCount);
        var kind = cType == CudaDataType.R16BF ? DeviceOpKind.GemmBf16ToBf16 : DeviceOpKind.GemmBf16;
        profiler.End(DeviceOp.Gemm(kind, m, n, k, a.Transposed, b.Transposed, batchCount), begin);
    }

    private void GemmExNow(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, RowMajorMatrix c, CudaDataType cType, int batchCount)
    {
        var g = GemmMapping.ToColumnMajor(m, n, k, Matrix(a.Data, a.LeadingDimension, a.Transposed, a.BatchStride),
            Matrix(b.Data, b.LeadingDimension, b.Transposed, b.BatchStride), c, batchCount);
        if (g.IsEmpty) return;
        MakeCurrent();
        const CudaDataType bf16 = CudaDataType.R16BF;
        // CUBLAS_COMPUTE_32F takes fp32 alpha and beta.
        var status = g.BatchCount == 1
            ? Cublas.cublasGemmEx(blasValue, g.TransA, g.TransB, g.M, g.N, g.K, &alpha, g.A, bf16, g.Lda, g.B, bf16, g.Ldb,
                &beta, g.C, cType, g.Ldc, CublasComputeType.Compute32F, CublasGemmAlgo.Default)
            : Cublas.cublasGemmStridedBatchedEx(blasValue, g.TransA, g.TransB, g.M, g.N, g.K, &alpha, g.A, bf16, g.Lda, g.StrideA,
                g.B, bf16, g.Ldb, g.StrideB, &beta, g.C, cType, g.Ldc, g.StrideC, g.BatchCount, CublasComputeType.Compute32F, CublasGemmAlgo.Default);
        if (status != CublasStatus.Success)
            throw GemmFailure(status, g.BatchCount == 1 ? "cublasGemmEx" : "cublasGemmStridedBatchedEx", m, n, k, batchCount);
    }

    private static RowMajorMatrix Matrix<T>(DeviceSpan<T> data, int ld, bool transposed, long batchStride) where T : unmanaged =>
        new(data.Address, data.Length, ld, transposed, batchStride);

    private static CudaException GemmFailure(CublasStatus status, string function, int m, int n, int k, int batchCount) =>
        CudaCheck.Failure(status, $"{function}(row-major m={m}, n={n}, k={k}{(batchCount > 1 ? $", batch {batchCount}" : "")})");
}

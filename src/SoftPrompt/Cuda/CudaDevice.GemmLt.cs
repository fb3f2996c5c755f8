using System.Numerics;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

// GEMMs with a fused epilogue through cuBLASLt on the device's stream. Each (shape, types, epilogue, pointer alignments)
// gets its descriptors, layouts and heuristic algorithm once, on its first call; later calls only set the bias and aux
// pointers and run. The workspace is one buffer, allocated on the first call.
public sealed unsafe partial class CudaDevice
{
    /// <summary>The workspace every cuBLASLt call may use (NVIDIA's recommended size for Hopper is 32 MiB).</summary>
    public const long LtWorkspaceBytes = 32L << 20;

    private CublasLtHandle? lt;
    private DeviceBuffer<byte>? ltWorkspace;
    private readonly Dictionary<LtKey, LtPlan> ltPlans = [];

    /// <summary>Row-major fp32 D = epilogue(alpha·op(A)·op(B) + beta·C) (TF32 when <see cref="AllowTf32"/>).</summary>
    public void GemmEpilogue(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue) =>
        Lt(m, n, k, alpha, Matrix(a.Data, a.LeadingDimension, a.Transposed, a.BatchStride), Matrix(b.Data, b.LeadingDimension, b.Transposed, b.BatchStride),
            beta, Matrix(c.Data, c.LeadingDimension, c.Transposed, c.BatchStride), Matrix(d.Data, d.LeadingDimension, d.Transposed, d.BatchStride),
            epilogue.Kind, epilogue.Bias.Address, epilogue.Bias.Length, Matrix(epilogue.Aux, epilogue.AuxLeadingDimension, false, 0), CudaDataType.R32F, CudaDataType.R32F,
            allowTf32 ? CublasComputeType.Compute32FFastTf32 : CublasComputeType.Compute32F);

    /// <summary>Row-major fp32 D = epilogue(alpha·op(A)·op(B) + beta·C) with bf16 A and B, summed in fp32.</summary>
    public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue) =>
        Lt(m, n, k, alpha, Matrix(a.Data, a.LeadingDimension, a.Transposed, a.BatchStride), Matrix(b.Data, b.LeadingDimension, b.Transposed, b.BatchStride),
            beta, Matrix(c.Data, c.LeadingDimension, c.Transposed, c.BatchStride), Matrix(d.Data, d.LeadingDimension, d.Transposed, d.BatchStride),
            epilogue.Kind, epilogue.Bias.Address, epilogue.Bias.Length, Matrix(epilogue.Aux, epilogue.AuxLeadingDimension, false, 0), CudaDataType.R16BF, CudaDataType.R32F, CublasComputeType.Compute32F);

    /// <summary>Row-major bf16 D = epilogue(alpha·op(A)·op(B) + beta·C) with bf16 A, B, C and aux: fp32 sums, the epilogue in bf16 (see IComputeDevice).</summary>
    public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, Bf16GemmOperand d, GemmEpilogue<ushort> epilogue) =>
        Lt(m, n, k, alpha, Matrix(a.Data, a.LeadingDimension, a.Transposed, a.BatchStride), Matrix(b.Data, b.LeadingDimension, b.Transposed, b.BatchStride),
            beta, Matrix(c.Data, c.LeadingDimension, c.Transposed, c.BatchStride), Matrix(d.Data, d.LeadingDimension, d.Transposed, d.BatchStride),
            epilogue.Kind, epilogue.Bias.Address, epilogue.Bias.Length, Matrix(epilogue.Aux, epilogue.AuxLeadingDimension, false, 0), CudaDataType.R16BF, CudaDataType.R16BF, CublasComputeType.Compute32F);

    private void Lt(int m, int n, int k, float alpha, RowMajorMatrix a, RowMajorMatrix b, float beta, RowMajorMatrix c, RowMajorMatrix d,
        GemmEpilogueKind epilogue, ulong bias, long biasLength, RowMajorMatrix aux, CudaDataType abType, CudaDataType dType, CublasComputeType compute)
    {
        var g = GemmMapping.ToColumnMajor(m, n, k, a, b, beta, c, d, epilogue, biasLength, aux, abType == CudaDataType.R16BF ? 2 : 4, dType == CudaDataType.R16BF ? 2 : 4);
        if (g.IsEmpty) return;
        if (profiler is null) { LtNow(g, alpha, beta, d.Address, epilogue, bias, aux, abType, dType, compute, m, n, k); return; }
        int begin = profiler.Begin();
        LtNow(g, alpha, beta, d.Address, epilogue, bias, aux, abType, dType, compute, m, n, k);
        profiler.End(DeviceOp.GemmWithEpilogue(GemmEpilogueOps.Label(OperandKind(abType, compute), dType == CudaDataType.R16BF, epilogue),
            m, n, k, a.Transposed, b.Transposed), begin);
    }

    private static GemmEpilogueOps.Arithmetic OperandKind(CudaDataType abType, CublasComputeType compute) =>
        abType == CudaDataType.R16BF ? GemmEpilogueOps.Arithmetic.Bf16 : compute == CublasComputeType.Compute32FFastTf32 ? GemmEpilogueOps.Arithmetic.Tf32 : GemmEpilogueOps.Arithmetic.Fp32;

    private void LtNow(ColumnMajorGemm g, float alpha, float beta, ulong d, GemmEpilogueKind epilogue, ulong bias, RowMajorMatrix aux,
        CudaDataType abType, CudaDataType dType, CublasComputeType compute, int m, int n, int k)
    {
        MakeCurrent();
        var key = new LtKey(g.TransA, g.TransB, g.M, g.N, g.K, g.Lda, g.Ldb, g.Ldc, aux.LeadingDimension, abType, dType, compute, epilogue,
            Alignment(g.A), Alignment(g.B), Alignment(g.C), Alignment(d), Alignment(bias), Alignment(aux.Address));
        if (!ltPlans.TryGetValue(key, out var plan)) plan = CreatePlan(key, bias, aux.Address, m, n, k);
        string call = "cublasLtMatmul";
        var status = SetPointers(plan.Desc, epilogue, bias, aux.Address, out string? attribute);
        if (status == CublasStatus.Success)
        {
            var algo = plan.Algo;
            status = CublasLt.cublasLtMatmul(lt!.DangerousGetHandle(), plan.Desc, &alpha, g.A, plan.A, g.B, plan.B, &beta, g.C, plan.D, d, plan.D,
                &algo, ltWorkspace!.Address, (nuint)LtWorkspaceBytes, streamValue);
        }
        else call = $"cublasLtMatmulDescSetAttribute({attribute})";
        if (status != CublasStatus.Success) throw LtFailure(status, call, key, m, n, k);
    }

    private static CublasStatus SetPointers(nint desc, GemmEpilogueKind epilogue, ulong bias, ulong aux, out string? attribute)
    {
        attribute = null;
        if (epilogue.HasBias())
        {
            var status = CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.BiasPointer, &bias, (nuint)sizeof(ulong));
            if (status != CublasStatus.Success) { attribute = "BIAS_POINTER"; return status; }
        }
        if (epilogue.HasAux())
        {
            var status = CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.EpilogueAuxPointer, &aux, (nuint)sizeof(ulong));
            if (status != CublasStatus.Success) { attribute = "EPILOGUE_AUX_POINTER"; return status; }
        }
        return CublasStatus.Success;
    }

    // A shape's first call: descriptors, layouts and the heuristic's best algorithm for these pointer alignments.
    private LtPlan CreatePlan(LtKey key, ulong bias, ulong aux, int m, int n, int k)
    {
        EnsureLt();
        var plan = new LtPlan();
        try
        {
            nint desc, la, lb, ld, preference = 0;
            Check(CublasLt.cublasLtMatmulDescCreate(&desc, key.Compute, CudaDataType.R32F), "cublasLtMatmulDescCreate");
            plan.Desc = desc;
            int transA = (int)key.TransA, transB = (int)key.TransB;
            uint epilogue = (uint)ToCublasLt(key.Epilogue);
            Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.TransA, &transA, sizeof(int)), "cublasLtMatmulDescSetAttribute(TRANSA)");
            Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.TransB, &transB, sizeof(int)), "cublasLtMatmulDescSetAttribute(TRANSB)");
            Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.Epilogue, &epilogue, sizeof(uint)), "cublasLtMatmulDescSetAttribute(EPILOGUE)");
            if (key.Epilogue.HasBias())
            {
                int biasType = (int)key.DType;  // an fp32 bias with a bf16 D is rejected (CUBLAS_STATUS_INVALID_VALUE, H200, cuBLAS 13)
                Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.BiasDataType, &biasType, sizeof(int)), "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)");
            }
            if (key.Epilogue.HasAux())
            {
                long auxLd = key.AuxLd;
                Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.EpilogueAuxLd, &auxLd, sizeof(long)), "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)");
            }
            // The heuristic reads the bias and aux pointers for their alignment.
            Check(SetPointers(desc, key.Epilogue, bias, aux, out _), "cublasLtMatmulDescSetAttribute(pointers)");
            // Column-major: A is [M, K] (or [K, M] transposed), B [K, N] (or [N, K]), C = D [M, N].
            var (aRows, aCols) = key.TransA == CublasOperation.N ? (key.M, key.K) : (key.K, key.M);
            var (bRows, bCols) = key.TransB == CublasOperation.N ? (key.K, key.N) : (key.N, key.K);
            Check(CublasLt.cublasLtMatrixLayoutCreate(&la, key.AbType, (ulong)aRows, (ulong)aCols, key.Lda), "cublasLtMatrixLayoutCreate(A)");
            plan.A = la;
            Check(CublasLt.cublasLtMatrixLayoutCreate(&lb, key.AbType, (ulong)bRows, (ulong)bCols, key.Ldb), "cublasLtMatrixLayoutCreate(B)");
            plan.B = lb;
            Check(CublasLt.cublasLtMatrixLayoutCreate(&ld, key.DType, (ulong)key.M, (ulong)key.N, key.Ldd), "cublasLtMatrixLayoutCreate(D)");
            plan.D = ld;

            Check(CublasLt.cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
            try
            {
                ulong workspace = LtWorkspaceBytes;
                Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, CublasLtMatmulPreferenceAttribute.MaxWorkspaceBytes, &workspace, sizeof(ulong)), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
                SetAlignment(preference, CublasLtMatmulPreferenceAttribute.MinAlignmentABytes, key.AlignA);
                SetAlignment(preference, CublasLtMatmulPreferenceAttribute.MinAlignmentBBytes, key.AlignB);
                SetAlignment(preference, CublasLtMatmulPreferenceAttribute.MinAlignmentCBytes, key.AlignC);
                SetAlignment(preference, CublasLtMatmulPreferenceAttribute.MinAlignmentDBytes, key.AlignD);
                CublasLtMatmulHeuristicResult result;
                int found = 0;
                Check(CublasLt.cublasLtMatmulAlgoGetHeuristic(lt!.DangerousGetHandle(), desc, la, lb, ld, ld, preference, 1, &result, &found), "cublasLtMatmulAlgoGetHeuristic");
                if (found == 0 || result.State != CublasStatus.Success) Check(CublasStatus.NotSupported, "cublasLtMatmulAlgoGetHeuristic (no algorithm)");
                plan.Algo = result.Algo;
            }
            finally
            {
                CublasLt.cublasLtMatmulPreferenceDestroy(preference);
            }
            ltPlans.Add(key, plan);
            return plan;
        }
        catch
        {
            plan.Destroy();
            throw;
        }

        void Check(CublasStatus status, string call)
        {
            if (status != CublasStatus.Success) throw LtFailure(status, call, key, m, n, k);
        }
    }

    private static void SetAlignment(nint preference, CublasLtMatmulPreferenceAttribute attribute, uint bytes)
    {
        var status = CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, attribute, &bytes, sizeof(uint));
        if (status != CublasStatus.Success) throw CudaCheck.Failure(status, $"cublasLtMatmulPreferenceSetAttribute({attribute}, {bytes})");
    }

    private void EnsureLt()
    {
        if (lt is not null) return;
        nint raw;
        CublasStatus status;
        try
        {
            status = CublasLt.cublasLtCreate(&raw);
        }
        catch (DllNotFoundException)
        {
            throw new CudaException(
                $"cuBLASLt not found: {NativeLibraryResolver.DescribeAttempts(CudaLibraries.CublasLtImportName)} — it ships with cuBLAS (libcublasLt.so.N next to " +
                $"libcublas.so.N); install it or set {CudaLibraries.LibraryDirectoryVariable} to the directory holding both");
        }
        CudaCheck.Blas(status, $"cublasLtCreate (from {NativeLibraryResolver.LoadedFrom(CudaLibraries.CublasLtImportName)})");
        lt = new CublasLtHandle(context, raw);
        ltWorkspace = Allocate<byte>(LtWorkspaceBytes);
    }

    private void DisposeLt()
    {
        foreach (var plan in ltPlans.Values) plan.Destroy();
        ltPlans.Clear();
        ltWorkspace?.Dispose();
        lt?.Dispose();
    }

    private static CublasLtEpilogue ToCublasLt(GemmEpilogueKind kind) => kind switch
    {
        GemmEpilogueKind.Bias => CublasLtEpilogue.Bias,
        GemmEpilogueKind.GeluBias => CublasLtEpilogue.GeluBias,
        GemmEpilogueKind.GeluAuxBias => CublasLtEpilogue.GeluAuxBias,
        GemmEpilogueKind.DGelu => CublasLtEpilogue.DGelu,
        GemmEpilogueKind.None => CublasLtEpilogue.Default,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown GEMM epilogue."),
    };

    /// <summary>The largest power of two (at most 256) dividing an address: what the heuristic may assume of it.</summary>
    private static uint Alignment(ulong address) => address == 0 ? 256u : Math.Min(256u, 1u << BitOperations.TrailingZeroCount(address));

    private static CudaException LtFailure(CublasStatus status, string call, LtKey key, int m, int n, int k) =>
        CudaCheck.Failure(status, $"{call}(row-major m={m}, n={n}, k={k}, epilogue {key.Epilogue}, {key.AbType} A/B → {key.DType} D, {key.Compute}, aux ld {key.AuxLd})");

    private readonly record struct LtKey(CublasOperation TransA, CublasOperation TransB, int M, int N, int K, int Lda, int Ldb, int Ldd, int AuxLd,
        CudaDataType AbType, CudaDataType DType, CublasComputeType Compute, GemmEpilogueKind Epilogue,
        uint AlignA, uint AlignB, uint AlignC, uint AlignD, uint AlignBias, uint AlignAux);

    private sealed class LtPlan
    {
        public nint Desc, A, B, D;
        public CublasLtMatmulAlgo Algo;

        public void Destroy()
        {
            if (Desc != 0) CublasLt.cublasLtMatmulDescDestroy(Desc);
            if (A != 0) CublasLt.cublasLtMatrixLayoutDestroy(A);
            if (B != 0) CublasLt.cublasLtMatrixLayoutDestroy(B);
            if (D != 0) CublasLt.cublasLtMatrixLayoutDestroy(D);
            Desc = A = B = D = 0;
        }
    }
}

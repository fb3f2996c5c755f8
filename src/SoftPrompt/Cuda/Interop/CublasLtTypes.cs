using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

// cuBLASLt's enums and structs as cublasLt.h (CUDA 12/13) declares them. Sources, all read for this binding:
// - cublasLt.h's enum text (cublasLtMatmulDescAttributes_t, cublasLtMatrixLayoutAttribute_t,
//   cublasLtMatmulPreferenceAttributes_t, cublasLtEpilogue_t, cublasLtMatmulHeuristicResult_t), as reproduced in public
//   bindings of the header, and NVIDIA's nvmath-python pages nvmath.bindings.cublasLt.Epilogue / .MatmulDescAttribute
//   (docs.nvidia.com/cuda/nvmath-python/latest/bindings/generated/...), which list the same numbers.
// - cublasLt.h's comment on CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: for GELU_AUX_BIAS / DGELU(_BGRAD) the GELU input matrix
//   leading dimension "must be divisible by 8 and be no less than the number of rows in the output matrix" (int64_t).
// - The cuBLAS guide (cublasLtMatmulDescAttributes_t): BIAS_DATA_TYPE names the bias vector's type. Seen on an H200 with
//   libcublasLt.so.13 (a ctypes replay of this binding's calls, lt-epilogues branch): bf16 A/B into a bf16 D takes a bf16
//   bias only — with an fp32 bias the heuristic answers CUBLAS_STATUS_INVALID_VALUE for BIAS, GELU_BIAS and GELU_AUX_BIAS —
//   and with the attribute unset it read a bf16 bias as garbage; so we always set it, to D's type. fp32 and bf16→fp32
//   with an fp32 bias, TF32 included, and DGELU in all three type sets ran and matched float64 references; GELU matched
//   the tanh form, not the erf form. EPILOGUE_AUX_DATA_TYPE defaults to D's type and only fp8 kernels take another one, so the saved
//   pre-activation has D's type. The bias has as many elements as D has rows (column-major), is broadcast over columns
//   and added before the final transform: D = epilogue(alpha·op(A)·op(B) + beta·C + bias), computed in the compute type
//   (fp32 here) and rounded to D's type; with a bf16 D the epilogue works in bf16 (v rounded before the bias, GELU of the
//   rounded pre-activation): measured on the H200 run of 2026-12-04, see Emulation/EmulatedGemmEpilogue.cs.
// - GELU: the guide says only "x := GELU(x)"; the formula is the tanh approximation 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
//   (PyTorch's _addmm_activation(use_gelu=True) relies on it matching F.gelu(approximate="tanh") on CUDA, as NVIDIA's
//   TensorRT-LLM PR #17693 notes), i.e. GPT-2's gelu_new. Its GPU tanh may differ from tanhf in the last bits.
// - Types: bf16 A/B with CUBLAS_COMPUTE_32F and fp32 scale into bf16 or fp32 C/D; fp32 A/B with CUBLAS_COMPUTE_32F or
//   CUBLAS_COMPUTE_32F_FAST_TF32 into fp32 C/D; all with the epilogues below. C and D share one layout (cuBLASLt requires
//   Cdesc = Ddesc outside fp8), D may differ from C (out of place).

/// <summary>cublasLtEpilogue_t (only the values we use).</summary>
internal enum CublasLtEpilogue : uint
{
    Default = 1,
    Bias = 4,
    GeluBias = 36,
    GeluAuxBias = 164,
    DGelu = 192,
}

/// <summary>cublasLtMatmulDescAttributes_t.</summary>
internal enum CublasLtMatmulDescAttribute
{
    TransA = 3,
    TransB = 4,
    Epilogue = 7,
    BiasPointer = 8,
    EpilogueAuxPointer = 11,
    EpilogueAuxLd = 12,
    BiasDataType = 26,
}

/// <summary>cublasLtMatmulPreferenceAttributes_t.</summary>
internal enum CublasLtMatmulPreferenceAttribute
{
    MaxWorkspaceBytes = 1,
    MinAlignmentABytes = 5,
    MinAlignmentBBytes = 6,
    MinAlignmentCBytes = 7,
    MinAlignmentDBytes = 8,
}

/// <summary>cublasLtMatmulAlgo_t: 8 opaque 64-bit words.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CublasLtMatmulAlgo
{
    public fixed ulong Data[8];
}

/// <summary>cublasLtMatmulHeuristicResult_t.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CublasLtMatmulHeuristicResult
{
    public CublasLtMatmulAlgo Algo;
    public nuint WorkspaceSize;
    public CublasStatus State;
    public float WavesCount;
    public fixed int Reserved[4];
}

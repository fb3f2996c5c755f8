using System.Globalization;

namespace SoftPrompt.Cuda;

/// <summary>The kinds of work a device queues: kernels, GEMMs by arithmetic, copies by direction, memsets.</summary>
public enum DeviceOpKind
{
    Kernel,
    GemmFp32,
    GemmTf32,
    /// <summary>bf16 A and B on tensor cores, fp32 C.</summary>
    GemmBf16,
    /// <summary>bf16 A and B on tensor cores, bf16 C.</summary>
    GemmBf16ToBf16,
    /// <summary>A cuBLASLt GEMM with a fused epilogue (bias, GELU, GELU's gradient); its arithmetic and epilogue in <see cref="DeviceOp.KernelName"/>.</summary>
    GemmEpilogue,
    CopyHostToDevice,
    CopyDeviceToHost,
    CopyDeviceToDevice,
    Memset,
}

/// <summary>
/// One profiled op, as a value (no allocation per op): a kernel by name, a GEMM by kind and row-major shape
/// (C[m, n] = op(A)[m, k]·op(B)[k, n], <see cref="Batch"/> of them), a copy or memset by kind. Ops with equal values
/// share a row of the profile.
/// </summary>
public readonly record struct DeviceOp(DeviceOpKind Kind, string? KernelName = null, int M = 0, int N = 0, int K = 0, int Batch = 1,
    bool TransposeA = false, bool TransposeB = false)
{
    public static DeviceOp Kernel(string name) => new(DeviceOpKind.Kernel, name);

    public static DeviceOp Gemm(DeviceOpKind kind, int m, int n, int k, bool transposeA, bool transposeB, int batch) =>
        new(kind, null, m, n, k, batch, transposeA, transposeB);

    /// <param name="label">From <see cref="GemmEpilogueOps.Label"/>: "bf16→bf16 +gelu_aux_bias" (a cached string, no allocation).</param>
    public static DeviceOp GemmWithEpilogue(string label, int m, int n, int k, bool transposeA, bool transposeB) =>
        new(DeviceOpKind.GemmEpilogue, label, m, n, k, 1, transposeA, transposeB);

    public static DeviceOp Transfer(DeviceOpKind kind) => new(kind);

    public bool IsGemm => Kind is DeviceOpKind.GemmFp32 or DeviceOpKind.GemmTf32 or DeviceOpKind.GemmBf16 or DeviceOpKind.GemmBf16ToBf16 or DeviceOpKind.GemmEpilogue;

    /// <summary>Multiply-adds × 2 of one call (GEMMs; 0 otherwise).</summary>
    public double Flops => IsGemm ? 2.0 * M * N * K * Batch : 0;

    /// <summary>"rmsnorm_forward", "gemm bf16 3200×8192×2048 (N,T)", "gemm fp32 64×64×64 (T,N) ×12 batched", "copy host→device".</summary>
    public string Label => Kind switch
    {
        DeviceOpKind.Kernel => KernelName ?? "kernel",
        DeviceOpKind.CopyHostToDevice => "copy host→device",
        DeviceOpKind.CopyDeviceToHost => "copy device→host",
        DeviceOpKind.CopyDeviceToDevice => "copy device→device",
        DeviceOpKind.Memset => "memset",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"gemm {GemmKindName} {M}×{N}×{K} ({(TransposeA ? 'T' : 'N')},{(TransposeB ? 'T' : 'N')}){(Batch > 1 ? $" ×{Batch} batched" : "")}"),
    };

    private string GemmKindName => Kind switch
    {
        DeviceOpKind.GemmFp32 => "fp32",
        DeviceOpKind.GemmTf32 => "tf32",
        DeviceOpKind.GemmBf16 => "bf16",
        DeviceOpKind.GemmEpilogue => KernelName ?? "epilogue",
        _ => "bf16→bf16",
    };
}

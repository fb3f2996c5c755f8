namespace SoftPrompt.Cuda;

/// <summary>
/// What a GEMM does to its fp32 result v = alpha·op(A)·op(B) + beta·C before the rounding to D's type (a bf16 D rounds v first)
/// (cuBLASLt's epilogues of the same names; <see cref="Interop.CublasLtEpilogue"/> has the values and the sources).
/// </summary>
public enum GemmEpilogueKind
{
    /// <summary>D = v + bias[column].</summary>
    Bias,
    /// <summary>D = gelu(v + bias[column]), GELU the tanh approximation (GPT-2's gelu_new).</summary>
    GeluBias,
    /// <summary>As <see cref="GeluBias"/>, and Aux = v + bias[column], the pre-activation the reverse pass reads (rounded to Aux's type).</summary>
    GeluAuxBias,
    /// <summary>D = v · gelu'(Aux): the input gradient of GELU, with Aux the saved pre-activation (an input). No bias.</summary>
    DGelu,
    /// <summary>D = v, nothing more: for a C apart from D (a residual added into a new tensor), which plain cuBLAS cannot do.</summary>
    None,
}

internal static class GemmEpilogueKinds
{
    public static bool HasBias(this GemmEpilogueKind kind) => kind is GemmEpilogueKind.Bias or GemmEpilogueKind.GeluBias or GemmEpilogueKind.GeluAuxBias;
    public static bool HasAux(this GemmEpilogueKind kind) => kind is GemmEpilogueKind.GeluAuxBias or GemmEpilogueKind.DGelu;
}

/// <summary>
/// The epilogue of a row-major GEMM D[m, n]: <paramref name="Bias"/> has n elements (one per output column); Aux is
/// [m, n] row-major with leading dimension <paramref name="AuxLeadingDimension"/> (a multiple of 8, as cuBLASLt
/// requires). Both are in D's element type: cuBLASLt rejects an fp32 bias with a bf16 D (seen on an H200, cuBLAS 13:
/// the heuristic answers CUBLAS_STATUS_INVALID_VALUE), and takes aux only in D's type outside fp8.
/// </summary>
public readonly record struct GemmEpilogue<T>(GemmEpilogueKind Kind, DeviceSpan<T> Bias = default, DeviceSpan<T> Aux = default, int AuxLeadingDimension = 0)
    where T : unmanaged
{
    public static GemmEpilogue<T> WithBias(DeviceSpan<T> bias) => new(GemmEpilogueKind.Bias, bias);
    public static GemmEpilogue<T> GeluWithBias(DeviceSpan<T> bias) => new(GemmEpilogueKind.GeluBias, bias);
    public static GemmEpilogue<T> GeluSavingPreActivation(DeviceSpan<T> bias, DeviceSpan<T> preActivation, int leadingDimension) =>
        new(GemmEpilogueKind.GeluAuxBias, bias, preActivation, leadingDimension);
    public static GemmEpilogue<T> GeluGradient(DeviceSpan<T> preActivation, int leadingDimension) => new(GemmEpilogueKind.DGelu, default, preActivation, leadingDimension);
    public static GemmEpilogue<T> Plain => new(GemmEpilogueKind.None);

    public bool HasBias => Kind.HasBias();
    public bool HasAux => Kind.HasAux();
}

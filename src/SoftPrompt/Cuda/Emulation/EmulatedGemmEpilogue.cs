namespace SoftPrompt.Cuda.Emulation;

/// <summary>
/// The emulated device's GEMM with an epilogue, as cuBLASLt computes it (see <see cref="Interop.CublasLtEpilogue"/>'s
/// file): v = alpha·op(A)·op(B) + beta·C summed in fp32 (bf16 A, B, C widened exactly; the bias is in D's type), then per element of D[m, n]
/// Bias: v + bias[col]; GeluBias: gelu(v + bias[col]); GeluAuxBias: the same, with aux = v + bias[col] stored in aux's
/// type; DGelu: v · gelu'(aux); None: v, each result rounded to D's type (nearest even for bf16). With a bf16 D the epilogue works
/// in D's type, as measured on an H200 (cuBLAS 13.1: all five elements that missed a one-rounding reference matched this
/// bit for bit): v is rounded to bf16 first, and GELU reads the bf16-rounded v + bias (the value GeluAuxBias saves).
/// GELU is the tanh approximation evaluated in fp32. The operands are checked as on the GPU (<see cref="GemmMapping"/>),
/// including that D and aux do not overlap A or B, which the GPU would read while writing them (here it would not show).
/// </summary>
internal static unsafe class EmulatedGemmEpilogue
{
    [ThreadStatic] private static float[]? sums, wideA, wideB;

    public static void Run(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> e)
    {
        if (!Check(m, n, k, M(a), M(b), beta, M(c), M(d), e.Kind, e.Bias.Length, M(e.Aux, e.AuxLeadingDimension), sizeof(float), sizeof(float))) return;
        var v = Sum(m, n, k, alpha, (float*)a.Data.Address, a.LeadingDimension, a.Transposed, (float*)b.Data.Address, b.LeadingDimension, b.Transposed);
        AddC(v, m, n, beta, c.Data.Address, c.LeadingDimension, bf16: false);
        Finish(v, m, n, e.Kind, e.Bias.Address, d.Data.Address, d.LeadingDimension, e.Aux.Address, e.AuxLeadingDimension, bf16: false);
    }

    public static void Run(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> e)
    {
        if (!Check(m, n, k, M(a), M(b), beta, M(c), M(d), e.Kind, e.Bias.Length, M(e.Aux, e.AuxLeadingDimension), sizeof(ushort), sizeof(float))) return;
        var v = SumBf16(m, n, k, alpha, a, b);
        AddC(v, m, n, beta, c.Data.Address, c.LeadingDimension, bf16: false);
        Finish(v, m, n, e.Kind, e.Bias.Address, d.Data.Address, d.LeadingDimension, e.Aux.Address, e.AuxLeadingDimension, bf16: false);
    }

    public static void Run(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, Bf16GemmOperand d, GemmEpilogue<ushort> e)
    {
        if (!Check(m, n, k, M(a), M(b), beta, M(c), M(d), e.Kind, e.Bias.Length, M(e.Aux, e.AuxLeadingDimension), sizeof(ushort), sizeof(ushort))) return;
        var v = SumBf16(m, n, k, alpha, a, b);
        AddC(v, m, n, beta, c.Data.Address, c.LeadingDimension, bf16: true);
        Finish(v, m, n, e.Kind, e.Bias.Address, d.Data.Address, d.LeadingDimension, e.Aux.Address, e.AuxLeadingDimension, bf16: true);
    }

    private static RowMajorMatrix M(GemmOperand x) => new(x.Data.Address, x.Data.Length, x.LeadingDimension, x.Transposed, x.BatchStride);
    private static RowMajorMatrix M(Bf16GemmOperand x) => new(x.Data.Address, x.Data.Length, x.LeadingDimension, x.Transposed, x.BatchStride);
    private static RowMajorMatrix M<T>(DeviceSpan<T> aux, int ld) where T : unmanaged => new(aux.Address, aux.Length, ld, false, 0);

    /// <summary>cuBLASLt's checks, shared with the GPU path; false when D is empty.</summary>
    private static bool Check(int m, int n, int k, RowMajorMatrix a, RowMajorMatrix b, float beta, RowMajorMatrix c, RowMajorMatrix d,
        GemmEpilogueKind kind, long biasLength, RowMajorMatrix aux, int abSize, int dSize) =>
        !GemmMapping.ToColumnMajor(m, n, k, a, b, beta, c, d, kind, biasLength, aux, abSize, dSize).IsEmpty;

    private static float[] Room(long count, ref float[]? buffer)
    {
        if (buffer is null || buffer.Length < count) buffer = new float[checked((int)count)];
        return buffer;
    }

    private static Span<float> Sum(int m, int n, int k, float alpha, float* a, int lda, bool ta, float* b, int ldb, bool tb)
    {
        var v = Room((long)m * n, ref sums).AsSpan(0, m * n);
        var (aRows, aCols) = ta ? (k, m) : (m, k);
        var (bRows, bCols) = tb ? (n, k) : (k, n);
        Cpu.CpuGemm.Gemm<float>(ta, tb, m, n, k, alpha, new ReadOnlySpan<float>(a, Reach(aRows, aCols, lda)), lda,
            new ReadOnlySpan<float>(b, Reach(bRows, bCols, ldb)), ldb, 0f, v, n);
        return v;
    }

    private static Span<float> SumBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b)
    {
        var (aRows, aCols) = a.Transposed ? (k, m) : (m, k);
        var (bRows, bCols) = b.Transposed ? (n, k) : (k, n);
        int ra = Reach(aRows, aCols, a.LeadingDimension), rb = Reach(bRows, bCols, b.LeadingDimension);
        var wa = Room(ra, ref wideA);
        var wb = Room(rb, ref wideB);
        Checkpoints.ElementConversion.BFloat16ToSingle(new ReadOnlySpan<ushort>((ushort*)a.Data.Address, ra), wa.AsSpan(0, ra));
        Checkpoints.ElementConversion.BFloat16ToSingle(new ReadOnlySpan<ushort>((ushort*)b.Data.Address, rb), wb.AsSpan(0, rb));
        fixed (float* pa = wa, pb = wb)
            return Sum(m, n, k, alpha, pa, a.LeadingDimension, a.Transposed, pb, b.LeadingDimension, b.Transposed);
    }

    private static int Reach(int rows, int cols, int ld) => rows == 0 || cols == 0 ? 0 : checked((rows - 1) * ld + cols);

    // v += beta·C in fp32 (bf16 C widened exactly); beta = 0 reads no C, as cuBLASLt.
    private static void AddC(Span<float> v, int m, int n, float beta, ulong c, int ldc, bool bf16)
    {
        if (beta == 0) return;
        for (int row = 0; row < m; row++)
            for (int col = 0; col < n; col++)
            {
                float value = bf16 ? Widen(((ushort*)c)[(long)row * ldc + col]) : ((float*)c)[(long)row * ldc + col];
                v[row * n + col] += beta * value;
            }
    }

    private static void Finish(Span<float> v, int m, int n, GemmEpilogueKind kind, ulong bias, ulong d, int ldd, ulong aux, int ldaux, bool bf16)
    {
        for (int row = 0; row < m; row++)
            for (int col = 0; col < n; col++)
            {
                // The bias is in D's type (bf16 widened exactly).
                float sum = bf16 ? Widen(Round(v[row * n + col])) : v[row * n + col], result;
                float b = !kind.HasBias() ? 0f : bf16 ? Widen(((ushort*)bias)[col]) : ((float*)bias)[col];
                long at = (long)row * ldaux + col;
                switch (kind)
                {
                    case GemmEpilogueKind.Bias:
                        result = sum + b;
                        break;
                    case GemmEpilogueKind.GeluBias or GemmEpilogueKind.GeluAuxBias:
                        float pre = bf16 ? Widen(Round(sum + b)) : sum + b;
                        if (kind == GemmEpilogueKind.GeluAuxBias) { if (bf16) ((ushort*)aux)[at] = Round(pre); else ((float*)aux)[at] = pre; }
                        result = Gelu(pre);
                        break;
                    case GemmEpilogueKind.DGelu:
                        result = sum * GeluDerivative(bf16 ? Widen(((ushort*)aux)[at]) : ((float*)aux)[at]);
                        break;
                    default:
                        result = sum;
                        break;
                }
                long to = (long)row * ldd + col;
                if (bf16) ((ushort*)d)[to] = Round(result); else ((float*)d)[to] = result;
            }
    }

    private static float Widen(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    private static ushort Round(float value)
    {
        ushort bits = 0;
        Checkpoints.ElementConversion.SingleToBFloat16(new ReadOnlySpan<float>(&value, 1), new Span<ushort>(&bits, 1));
        return bits;
    }

    // gelu_tanh and gelu_tanh_derivative of kernels/kernel_helpers.cuh, operation for operation.
    private static readonly float GeluScale = MathF.Sqrt(2.0f / 3.14159265358979f);
    private const float GeluCubic = 0.044715f;

    internal static float Gelu(float x) => 0.5f * x * (1.0f + MathF.Tanh(GeluScale * (x + GeluCubic * x * x * x)));

    internal static float GeluDerivative(float x)
    {
        float th = MathF.Tanh(GeluScale * (x + GeluCubic * x * x * x));
        return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GeluScale * (1.0f + 3.0f * GeluCubic * x * x);
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// <see cref="IComputeDevice.GemmEpilogue(int, int, int, float, GemmOperand, GemmOperand, float, GemmOperand, GemmOperand, GemmEpilogue{float})"/>
/// and its bf16 overloads against a float64 reference of cuBLASLt's semantics: v = alpha·op(A)·op(B) + beta·C in fp32, the
/// epilogue on v, rounded to D's type (and aux's); with a bf16 D, v and GELU's input are bf16-rounded first, as an H200
/// computes it. The Gpu twin runs the same cases through cuBLASLt.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class GemmEpilogueTests(DeviceKind kind) : KernelTestBase(kind)
{
    public enum Types { Fp32, Bf16InFp32Out, Bf16 }

    private const ushort Bf16Sentinel = 0x7fc1;  // a NaN no result has: padding and unwritten elements keep it

    // The GPU's GELU may differ from tanhf in its last bits: one more bf16 ulp there, none here.
    private bool Emulated => Device is not CudaDevice;

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (Types types in Enum.GetValues<Types>())
            foreach (GemmEpilogueKind epilogue in Enum.GetValues<GemmEpilogueKind>())
            {
                //                             m   n   k  transA transB beta  ldd
                yield return new TestCaseData(types, epilogue, 5, 16, 7, false, false, 0f, 16);
                yield return new TestCaseData(types, epilogue, 9, 13, 33, true, false, 1f, 15);   // residual as C; odd n, aux padded to 16
                yield return new TestCaseData(types, epilogue, 1, 24, 40, false, true, 0.5f, 24);
                yield return new TestCaseData(types, epilogue, 17, 8, 5, true, true, 0f, 11);
            }
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheFloat64Reference(Types types, GemmEpilogueKind epilogue, int m, int n, int k, bool transA, bool transB, float beta, int ldd)
    {
        if (types != Types.Fp32) RequireBf16();
        int seed = m * 31 + n * 7 + k + (int)epilogue * 101 + (int)types * 1009;
        var (aRows, aCols) = transA ? (k, m) : (m, k);
        var (bRows, bCols) = transB ? (n, k) : (k, n);
        bool bf16In = types != Types.Fp32, bf16Out = types == Types.Bf16;
        // Inputs as the device sees them (bf16-rounded where bf16), so the reference is exact up to its own float64 rounding.
        float[] a = Representable(RandomFloats(aRows * aCols, seed, -1f, 1f), bf16In);
        float[] b = Representable(RandomFloats(bRows * bCols, seed + 1, -1f, 1f), bf16In);
        float[] c = Representable(RandomFloats(m * ldd, seed + 2, -2f, 2f), bf16Out);
        float[] bias = Representable(RandomFloats(n, seed + 3, -1f, 1f), bf16Out);  // in D's type, as cuBLASLt takes it
        int auxLd = (n + 7) / 8 * 8;
        float[] aux = Representable(RandomFloats(m * auxLd, seed + 4, -3f, 3f), bf16Out);  // DGelu's input; overwritten by GeluAuxBias
        var e = (Kind: epilogue, AuxLd: auxLd);

        var (d, auxOut, cAfter) = Run(types, m, n, k, transA, transB, beta, ldd, a, b, c, bias, aux, e);

        for (int row = 0; row < m; row++)
            for (int col = 0; col < n; col++)
            {
                double v = 0, magnitude = 0;
                for (int i = 0; i < k; i++)
                {
                    double x = a[transA ? i * aCols + row : row * aCols + i], w = b[transB ? col * bCols + i : i * bCols + col];
                    v += x * w;
                    magnitude += Math.Abs(x * w);
                }
                v = 0.9 * v;  // alpha
                v += beta * c[row * ldd + col];
                magnitude = 0.9 * magnitude + Math.Abs(beta * c[row * ldd + col]) + Math.Abs(bias[col]);
                // A bf16 D: the epilogue works in D's type (measured on an H200): the sum rounded to bf16 first, GELU on the
                // bf16-rounded v + bias. Rounding only at the end, or GELU before rounding, misses these on a GPU.
                if (bf16Out) v = GemmReference.FromBf16(GemmReference.ToBf16((float)v));
                double pre = v + bias[col];
                if (bf16Out && epilogue != GemmEpilogueKind.Bias) pre = GemmReference.FromBf16(GemmReference.ToBf16((float)pre));
                double expected = epilogue switch
                {
                    GemmEpilogueKind.Bias => pre,
                    GemmEpilogueKind.GeluBias or GemmEpilogueKind.GeluAuxBias => Gelu(pre),
                    GemmEpilogueKind.DGelu => v * GeluDerivative(aux[row * auxLd + col]),
                    _ => v,  // None: the bias and aux are not read
                };
                string at = $"{types} {epilogue} d[{row}, {col}]";
                AssertOneRounding(d[row * ldd + col], expected, magnitude, bf16Out, at);
                if (epilogue == GemmEpilogueKind.GeluAuxBias) AssertOneRounding(auxOut[row * auxLd + col], pre, magnitude, bf16Out, $"{types} aux[{row}, {col}]");
            }
        // Padding past n in D's rows keeps its bits; C is an input only (D ≠ C).
        for (int row = 0; row < m; row++)
            for (int col = n; col < ldd; col++)
                Assert.That(float.IsNaN(d[row * ldd + col]), $"d[{row}, {col}] is row padding and was written");
        Assert.That(cAfter, Is.EqualTo(c), "C was written");
        if (epilogue is GemmEpilogueKind.DGelu or GemmEpilogueKind.None) Assert.That(auxOut, Is.EqualTo(aux), $"{epilogue} wrote aux");
    }

    [Test]
    public void AResidualAsCAndTheBiasBothReachD()
    {
        // 1×1×1: D = 2·3 + 1·10 + 0.5, exact in fp32. Dropping the bias or the residual, or writing D into C, fails.
        using var a = Put(new[] { 2f });
        using var b = Put(new[] { 3f });
        using var c = Put(new[] { 10f });
        using var bias = Put(new[] { 0.5f });
        using var d = Put(new[] { float.NaN });
        Device.GemmEpilogue(1, 1, 1, 1f, new GemmOperand(a.Span, 1), new GemmOperand(b.Span, 1), 1f, new GemmOperand(c.Span, 1), new GemmOperand(d.Span, 1),
            GemmEpilogue<float>.WithBias(bias.Span));
        Assert.That(d.Read(), Is.EqualTo(new[] { 16.5f }));
        Assert.That(c.Read(), Is.EqualTo(new[] { 10f }));
    }

    [Test]
    public void RejectsAnAuxLeadingDimensionThatIsNotAMultipleOf8()
    {
        using var a = Zeros<float>(4 * 3);
        using var b = Zeros<float>(3 * 12);
        using var d = Zeros<float>(4 * 12);
        using var bias = Zeros<float>(12);
        using var aux = Zeros<float>(4 * 12);
        var error = Assert.Throws<ArgumentException>(() => Device.GemmEpilogue(4, 12, 3, 1f, new GemmOperand(a.Span, 3), new GemmOperand(b.Span, 12), 0f, default,
            new GemmOperand(d.Span, 12), GemmEpilogue<float>.GeluSavingPreActivation(bias.Span, aux.Span, 12)))!;
        Assert.That(error.Message, Does.Contain("aux leading dimension 12 is not a multiple of 8").And.Contain("16"));
        Assert.That(error.ParamName, Is.EqualTo("aux"));
    }

    [Test]
    public void RejectsAShortBiasAndAShortAux()
    {
        using var a = Zeros<float>(4 * 3);
        using var b = Zeros<float>(3 * 16);
        using var d = Zeros<float>(4 * 16);
        using var bias = Zeros<float>(16);
        using var aux = Zeros<float>(4 * 16);
        var shortBias = Assert.Throws<ArgumentException>(() => Device.GemmEpilogue(4, 16, 3, 1f, new GemmOperand(a.Span, 3), new GemmOperand(b.Span, 16), 0f, default,
            new GemmOperand(d.Span, 16), GemmEpilogue<float>.WithBias(bias.Span.Slice(0, 15))))!;
        Assert.That(shortBias.Message, Does.Contain("bias holds 15 elements").And.Contain("16 columns"));
        var shortAux = Assert.Throws<ArgumentException>(() => Device.GemmEpilogue(4, 16, 3, 1f, new GemmOperand(a.Span, 3), new GemmOperand(b.Span, 16), 0f, default,
            new GemmOperand(d.Span, 16), GemmEpilogue<float>.GeluGradient(aux.Span.Slice(0, 63), 16)))!;
        Assert.That(shortAux.Message, Does.Contain("GEMM operand aux").And.Contain("holds 63"));
    }

    [Test]
    public void RejectsACWithAnotherLeadingDimensionThanD()
    {
        using var a = Zeros<float>(2 * 3);
        using var b = Zeros<float>(3 * 8);
        using var c = Zeros<float>(2 * 9);
        using var d = Zeros<float>(2 * 8);
        using var bias = Zeros<float>(8);
        var error = Assert.Throws<ArgumentException>(() => Device.GemmEpilogue(2, 8, 3, 1f, new GemmOperand(a.Span, 3), new GemmOperand(b.Span, 8), 1f,
            new GemmOperand(c.Span, 9), new GemmOperand(d.Span, 8), GemmEpilogue<float>.WithBias(bias.Span)))!;
        Assert.That(error.Message, Does.Contain("input c has leading dimension 9, output d 8"));
    }

    [Test]
    public void RejectsADThatOverlapsAnOperand()
    {
        using var buffer = Zeros<float>(64);
        using var b = Zeros<float>(8 * 8);
        using var bias = Zeros<float>(8);
        var error = Assert.Throws<ArgumentException>(() => Device.GemmEpilogue(4, 8, 8, 1f, new GemmOperand(buffer.Span.Slice(0, 32), 8), new GemmOperand(b.Span, 8), 0f, default,
            new GemmOperand(buffer.Span.Slice(16, 32), 8), GemmEpilogue<float>.WithBias(bias.Span)))!;
        Assert.That(error.Message, Does.Contain("GEMM d overlaps a"));
    }

    private (float[] D, float[] Aux, float[] C) Run(Types types, int m, int n, int k, bool transA, bool transB, float beta, int ldd,
        float[] a, float[] b, float[] c, float[] bias, float[] aux, (GemmEpilogueKind Kind, int AuxLd) e)
    {
        const float alpha = 0.9f;
        int lda = transA ? m : k, ldb = transB ? k : n;
        if (types == Types.Bf16)
        {
            using var dBias16 = Put(ToBf16(bias));
            using var da = Put(ToBf16(a));
            using var db = Put(ToBf16(b));
            using var dc = Put(ToBf16(c));
            using var dd = Put(Enumerable.Repeat(Bf16Sentinel, m * ldd).ToArray());
            using var dAux = Put(ToBf16(aux));
            Device.GemmEpilogue(m, n, k, alpha, new Bf16GemmOperand(da.Span, lda, transA), new Bf16GemmOperand(db.Span, ldb, transB), beta,
                new Bf16GemmOperand(dc.Span, ldd), new Bf16GemmOperand(dd.Span, ldd), new GemmEpilogue<ushort>(e.Kind, dBias16.Span, dAux.Span, e.AuxLd));
            return (FromBf16(dd.Read()), FromBf16(dAux.Read()), FromBf16(dc.Read()));
        }
        using var dBias = Put(bias);
        using var c32 = Put(c);
        using var d32 = Put(Enumerable.Repeat(float.NaN, m * ldd).ToArray());
        using var aux32 = Put(aux);
        var epilogue = new GemmEpilogue<float>(e.Kind, dBias.Span, aux32.Span, e.AuxLd);
        if (types == Types.Bf16InFp32Out)
        {
            using var da = Put(ToBf16(a));
            using var db = Put(ToBf16(b));
            Device.GemmEpilogue(m, n, k, alpha, new Bf16GemmOperand(da.Span, lda, transA), new Bf16GemmOperand(db.Span, ldb, transB), beta,
                new GemmOperand(c32.Span, ldd), new GemmOperand(d32.Span, ldd), epilogue);
        }
        else
        {
            using var da = Put(a);
            using var db = Put(b);
            Device.GemmEpilogue(m, n, k, alpha, new GemmOperand(da.Span, lda, transA), new GemmOperand(db.Span, ldb, transB), beta,
                new GemmOperand(c32.Span, ldd), new GemmOperand(d32.Span, ldd), epilogue);
        }
        return (d32.Read(), aux32.Read(), c32.Read());
    }

    /// <summary>
    /// fp32: within fp32 summation error of the reference. bf16: the reference rounded once, i.e. within half a bf16 ulp plus
    /// the fp32 sum's own error (a second rounding, e.g. GELU applied to a bf16-rounded pre-activation, misses it).
    /// </summary>
    private void AssertOneRounding(float actual, double expected, double magnitude, bool bf16, string at)
    {
        double fp32Error = 2e-6 * (magnitude + 1);
        double tolerance = bf16 ? Bf16Ulp(expected) * (Emulated ? 0.5 : 1.0) + fp32Error : fp32Error * (Emulated ? 1 : 50);
        Assert.That(actual, Is.EqualTo(expected).Within(tolerance), at);
    }

    private static double Bf16Ulp(double x) => x == 0 ? 0 : Math.Pow(2, Math.Floor(Math.Log2(Math.Abs(x))) - 7);

    private static double Gelu(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    private static double GeluDerivative(double x)
    {
        double k = Math.Sqrt(2 / Math.PI), t = Math.Tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }

    private void RequireBf16()
    {
        if (Device is CudaDevice gpu && gpu.ComputeCapability.Major < 8) Assert.Ignore($"bf16 GEMMs need compute capability 8.0; this GPU is {gpu.ComputeCapability}");
    }

    private static float[] Representable(float[] x, bool bf16) => bf16 ? FromBf16(ToBf16(x)) : x;
    private static ushort[] ToBf16(float[] x) => [.. x.Select(GemmReference.ToBf16)];
    private static float[] FromBf16(ushort[] x) => [.. x.Select(GemmReference.FromBf16)];
}

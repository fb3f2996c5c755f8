using SoftPrompt.Tests.Cuda;

namespace SoftPrompt.Tests.Kernels;

/// <summary>
/// kernels/attention_tc.cu (bf16 mma.sync, hs 64 and 128) against the same CPU references as the fp32 kernels, through the
/// launchers' bf16-storage overloads (q, k, v and out bf16 in memory; the cases' values rounded to bf16 on upload):
/// GPT-2 / Llama-style causal self-attention, T5 encoder (bias + key lengths),
/// decoder (causal + bias) and cross-attention (Tq ≠ Tk), lengths that are not multiples of the 64-row block or of the
/// 64 / 32-row inner tiles, packed / separate / padded (scalar, no cp.async) layouts, scaled scores and interleaved outputs.
/// </summary>
public sealed partial class T5KernelAttentionTests
{
    private static float RoundToBf16(float x) => float.IsNaN(x) ? x : GemmReference.FromBf16(GemmReference.ToBf16(x));

    // Tolerance of the tensor-core kernels, relative to max(max |expected|, 1). With q, k, v, dout exactly bf16 (bf16Exact)
    // the only roundings beyond fp32 are P (forward and backward) and dS (backward) to bf16 as mma operands and out's one
    // rounding on store: relative u = 2^-9 each, so out = Σ P·v errs by ≤ u·Σ P|v| ≤ u·max|v|, and a gradient by
    // ≤ u·Σ|P or dS|·|operand| (a few u of its own scale). lse is fp32 throughout (sum of unrounded P), so it gets the
    // fp32 bar. 4u ≈ 7.8e-3 leaves room for the GPU's truncating tensor-core adds; the unrounded-input case
    // (TensorCoreKernelsOnUnroundedActivations) adds the rounding of q, k, v, dout (relative u each: score error ≤ 2u·Σ|q||k|, a
    // few 1e-2 at hs 128) and gets 8× that.
    private static double Bf16Tolerance(string what) => what == "lse" ? 2e-5 + 1e-4 : 4.0 / 512;

    //  kind          layout           outputs             B   Tq   Tk  H  hs  key lengths scale
    private static readonly object[] TensorCoreCases =
    [
        new object[] { Kind.Decoder, Layout.Packed, Outputs.Interleaved, 2, 70, 70, 2, 64, false, 0.125f }, // GPT-2 plus a bias
        new object[] { Kind.Decoder, Layout.Separate, Outputs.Dense, 1, 130, 130, 1, 128, false, 1f },     // Llama-style, 3 blocks, 5 key tiles
        new object[] { Kind.Decoder, Layout.Padded, Outputs.Padded, 2, 33, 33, 1, 64, true, 1f },          // scalar path, causal + key lengths
        new object[] { Kind.Encoder, Layout.Packed, Outputs.Dense, 3, 70, 70, 2, 64, true, 1f },           // key lengths 70, 35, 1
        new object[] { Kind.Encoder, Layout.Separate, Outputs.Padded, 2, 40, 40, 1, 128, true, 0.3f },
        new object[] { Kind.Encoder, Layout.Packed, Outputs.Dense, 2, 1, 1, 1, 64, true, 1f },             // T = 1
        new object[] { Kind.Cross, Layout.Packed, Outputs.Interleaved, 2, 70, 5, 1, 64, true, 1f },        // more queries than keys
        new object[] { Kind.Cross, Layout.Separate, Outputs.Dense, 3, 1, 70, 2, 128, true, 1f },           // Tq = 1, 3 key tiles
        new object[] { Kind.Cross, Layout.Packed, Outputs.Dense, 2, 33, 130, 2, 64, false, 1f },           // Tq ≠ Tk, 3 key tiles
    ];

    [TestCaseSource(nameof(TensorCoreCases))]
    public void TensorCoreKernelsMatchTheCpuOps(Kind attention, Layout layout, Outputs outputs, int batch, int queryLength, int keyLength, int heads,
        int headSize, bool keyLengths, float scale) =>
        ForwardAndBackward(Make(attention, batch, queryLength, keyLength, heads, headSize, keyLengths, scale, bf16Exact: true) with { Bf16Storage = true },
            layout, outputs);

    // The engine's situation: activations computed in fp32 and rounded to bf16 once (by the bf16 GEMMs' epilogue; here on
    // upload), dout fp32 (the kernels round it); the reference is the fp32 op on the unrounded values.
    [TestCase(Kind.Decoder, 2, 70, 70, 2, 64, false, 0.125f)]
    [TestCase(Kind.Encoder, 2, 70, 70, 1, 128, true, 1f)]
    public void TensorCoreKernelsOnUnroundedActivations(Kind attention, int batch, int queryLength, int keyLength, int heads, int headSize, bool keyLengths, float scale)
    {
        var c = Make(attention, batch, queryLength, keyLength, heads, headSize, keyLengths, scale) with { Bf16Storage = true };
        using var x = new Inputs(this, c, Layout.Separate);
        using var bias = new Bias(this, c);
        using var r = new Results(this, c, Outputs.Dense);
        using var lse = Put(Filled(c.Lse.Length, float.NaN));
        using var scratch = Put(Filled(c.B * c.H * c.Tq, float.NaN));
        Forward(c, x, bias, r, lse.Span);
        AssertNear(r.ReadOut(), c.Out, "out", c, looseness: 8);
        AssertNear(lse.Read(), c.Lse, "lse", c, looseness: 50);  // lse moves by the score error: ≈ 1e-2 at hs 128
        Backward(c, x, bias, r, lse.Span, scratch.Span);
        var (dq, dk, dv) = r.ReadGradients();
        AssertNear(dq, c.Dq, "dq", c, looseness: 8);
        AssertNear(dk, c.Dk, "dk", c, looseness: 8);
        AssertNear(dv, c.Dv, "dv", c, looseness: 8);
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// GPT-2 on a device (<see cref="CpuGpt2Engine{T}"/>'s forward and input-gradient-only reverse pass as kernels plus GEMMs):
/// pre-LayerNorm blocks of causal attention over a fused q|k|v projection and a gelu_new MLP, learned positions, Conv1D
/// weights stored [in, out], the LM head tied to wte. The skeleton (<see cref="DecoderOnlyDeviceEngine"/>) runs the blocks.
/// </summary>
public sealed partial class CudaGpt2Engine : DecoderOnlyDeviceEngine
{
    private readonly Gpt2Config config;
    private readonly Gpt2DeviceWeights weights;
    private Gpt2DevicePlan? plan;

    /// <param name="bf16">Store the block matrices in bf16 and run their GEMMs on bf16 tensor cores (<see cref="Precision.Bf16"/>).</param>
    public CudaGpt2Engine(IComputeDevice device, Gpt2Weights<float> hostWeights, bool ownsDevice = false, bool bf16 = false)
        : this(device, hostWeights.Config, new HostWeightSource<Gpt2Weights<float>>(hostWeights), ownsDevice, bf16) { }

    /// <param name="weights">Host weights, or a checkpoint streamed tensor by tensor (<see cref="Gpt2Checkpoint.Open"/>).</param>
    internal CudaGpt2Engine(IComputeDevice device, Gpt2Config config, WeightSource<Gpt2Weights<float>> weights, bool ownsDevice = false, bool bf16 = false)
        : base(device, ownsDevice, config.Embedding, config.VocabSize, config.MaxPositions, config.Layers, bf16)
    {
        this.config = config;
        this.weights = Gpt2DeviceWeights.Upload(device, config, weights, bf16);
    }

    private protected override DeviceSpan<ushort> Bf16Operands => runningDecoding?.Bf16Operands ?? plan!.Bf16Operands;

    private protected override DecoderDevicePlan CurrentPlan => plan ?? throw new InvalidOperationException("Run a batch first.");
    private protected override DeviceSpan<float> TokenEmbedding => weights.TokenEmbedding;
    private protected override DeviceSpan<float> PositionTable => weights.PositionEmbedding;
    private protected override DeviceMatrix HeadWeight => weights.HeadWeight;

    private protected override DecoderDevicePlan PlanFor(TokenBatch batch)
    {
        if (plan is null || !plan.Fits(batch, state.Layout!)) GrowPlan(batch, state.Layout!);
        return plan!;
    }

    // Apart from PlanFor so that the closure below is allocated only when a plan grows, never in a steady step.
    private void GrowPlan(TokenBatch batch, PromptLayout layout)
    {
        var (rows, positions) = Gpt2DevicePlan.Capacity(batch, plan);
        bool recomputes = RecomputesNextPlan(r => Gpt2DevicePlan.Measure(config, rows, positions, layout, bf16, r).Arena.Bytes, plan?.Arena.Bytes ?? 0);
        plan?.Dispose();
        plan = null;
        plan = Gpt2DevicePlan.Allocate(device, config, rows, positions, layout, bf16, recomputes);
    }

    private protected override void BlockForward(int layer, bool recomputing)
    {
        var p = plan!;
        var s = p.Layers[layer];
        var w = weights.Layers[layer];
        var shared = p.Inputs.SharedRows;
        int n = step.Shared, c = config.Embedding, inner = config.Inner;
        float eps = (float)config.LayerNormEpsilon;
        var normed = LayerNormForGemm(p.Norm, s.Mean1, s.Rstd1, s.Input, w.Norm1Weight, w.Norm1Bias, n, c, eps);
        float scale = config.AttentionScale<float>(layer);
        GemmInput attention;
        if (bf16)
        {
            // q|k|v and the attention output stay bf16 in memory: c_attn's GEMM writes them with its bias, attention reads and
            // writes bf16, and c_proj's GEMM reads the output as its operand.
            LinearToBf16(s.QkvBf16.Slice(0, (long)n * 3 * c), normed, w.QkvWeight, w.QkvBias.Bf16, n, c, 3 * c);
            GatherRows.Launch(device, p.QkvFullBf16, s.QkvBf16, shared.FullToShared, step.Full, 3 * c);
            FusedQkvAttention.Forward(device, p.AttentionFullBf16, s.LogSumExp, p.QkvFullBf16, step.Rows, step.Sequence, c, config.Heads, scale);
            GatherRows.Launch(device, s.AttentionBf16, p.AttentionFullBf16, shared.SharedToFull, n, c);
            attention = GemmInput.OfBf16(s.AttentionBf16.Slice(0, (long)n * c));
        }
        else
        {
            Linear(s.Qkv, default, normed, w.QkvWeight, w.QkvBias.Fp32, n, c, 3 * c);
            GatherRows.Launch(device, p.QkvFull, s.Qkv, shared.FullToShared, step.Full, 3 * c);
            FusedQkvAttention.Forward(device, p.AttentionFull, s.LogSumExp, p.QkvFull, step.Rows, step.Sequence, c, config.Heads, scale);
            GatherRows.Launch(device, s.Attention, p.AttentionFull, shared.SharedToFull, n, c);
            attention = s.Attention;
        }
        Linear(s.Middle, s.Input, attention, w.AttentionProjectionWeight, w.AttentionProjectionBias, n, c, c);
        normed = LayerNormForGemm(p.Norm, s.Mean2, s.Rstd2, s.Middle, w.Norm2Weight, w.Norm2Bias, n, c, eps);
        // c_fc with its bias and GELU in one GEMM: the activation for c_proj, and the pre-activation saved for the reverse pass
        // (recomputation repeats the same call, so the saved values are those of the forward pass bit for bit).
        var activated = LinearGelu(s, p, normed, w.FcWeight, w.FcBias, n, c, inner);
        if (recomputing) return;
        Linear(p.BlockInput(layer + 1), s.Middle, activated, w.FcProjectionWeight, w.FcProjectionBias, n, inner, c);
    }

    private protected override void FinalNormForward()
    {
        var p = plan!;
        LayerNormForward.Launch(device, p.FinalNorm, p.FinalMean, p.FinalRstd, p.Final, weights.FinalNormWeight, weights.FinalNormBias, step.Shared,
            config.Embedding, (float)config.LayerNormEpsilon);
    }

    private protected override void FinalNormBackward(DeviceSpan<float> dResidual)
    {
        var p = plan!;
        LayerNormBackwardForGemm(dResidual, p.Gradient, p.Final, weights.FinalNormWeight, p.FinalMean, p.FinalRstd, step.Shared, config.Embedding);
    }

    // The zero row FullToSharedOrZero points repeated prompt positions at.
    private protected override void BeginBackward() => device.Zero(plan!.Projection.Slice((long)step.Shared * config.Embedding, config.Embedding));

    private protected override void BlockBackward(int layer, DeviceSpan<float> dResidual)
    {
        var p = plan!;
        var s = p.Layers[layer];
        var w = weights.Layers[layer];
        var shared = p.Inputs.SharedRows;
        int n = step.Shared, c = config.Embedding, inner = config.Inner;
        // d(pre-activation) = (dResidual · c_projᵀ) ⊙ gelu'(pre-activation) in one GEMM, into c_fc's input-gradient operand
        // (bf16 in bf16 precision: the GEMM's result, rounded to bf16, times gelu' of the bf16 pre-activation, rounded again).
        long wide = (long)n * inner;
        GemmInput dHidden;
        if (bf16)
        {
            var d = p.WideBf16.Slice(0, wide);
            WeightGemm(n, inner, c, ResidualGradientOperand(dResidual), w.FcProjectionWeight, c, weightTransposed: true, d, inner, GemmEpilogue<ushort>.GeluGradient(s.HiddenBf16, p.HiddenStride));
            dHidden = GemmInput.OfBf16(d);
        }
        else
        {
            var d = p.Wide.Slice(0, wide);
            WeightGemm(n, inner, c, dResidual, w.FcProjectionWeight, c, weightTransposed: true, 0f, default, d, inner, GemmEpilogue<float>.GeluGradient(s.Hidden, p.HiddenStride));
            dHidden = d;
        }
        Conv1DInputGradient(p.Norm, dHidden, w.FcWeight, n, c, inner);
        LayerNormBackwardForGemm(dResidual, p.Norm, s.Middle, w.Norm2Weight, s.Mean2, s.Rstd2, n, c);
        Conv1DInputGradient(p.Projection, ResidualGradientOperand(dResidual), w.AttentionProjectionWeight, n, c, c);
        // Attention's backward on the full layout: a shared prompt position's output gradient enters once (from the
        // first row using it); every row's key/value gradients at its prompt positions then add up on the shared row.
        GatherRows.Launch(device, p.GradientAttentionFull, p.Projection, shared.FullToSharedOrZero, step.Full, c);
        float scale = config.AttentionScale<float>(layer);
        if (bf16)
        {
            GatherRows.Launch(device, p.QkvFullBf16, s.QkvBf16, shared.FullToShared, step.Full, 3 * c);
            GatherRows.Launch(device, p.AttentionFullBf16, s.AttentionBf16, shared.FullToShared, step.Full, c);
            FusedQkvAttention.Backward(device, p.GradientQkvFull, p.GradientAttentionFull, p.QkvFullBf16, p.AttentionFullBf16, s.LogSumExp, p.AttentionScratch,
                step.Rows, step.Sequence, c, config.Heads, scale);
        }
        else
        {
            GatherRows.Launch(device, p.QkvFull, s.Qkv, shared.FullToShared, step.Full, 3 * c);
            GatherRows.Launch(device, p.AttentionFull, s.Attention, shared.FullToShared, step.Full, c);
            FusedQkvAttention.Backward(device, p.GradientQkvFull, p.GradientAttentionFull, p.QkvFull, p.AttentionFull, s.LogSumExp, p.AttentionScratch,
                step.Rows, step.Sequence, c, config.Heads, scale);
        }
        // q|k|v's gradient is only c_attn's GEMM operand: in bf16 the reduction rounds it into that operand itself.
        var dQkv = GemmInputBuffer(p.GradientQkv, (long)n * 3 * c);
        if (bf16) GatherSumRows.Launch(device, dQkv.Bf16, p.GradientQkvFull, shared.ReduceStarts, shared.ReduceIndex, n, 3 * c);
        else GatherSumRows.Launch(device, p.GradientQkv, p.GradientQkvFull, shared.ReduceStarts, shared.ReduceIndex, n, 3 * c, accumulate: false);
        Conv1DInputGradient(p.Norm, dQkv, w.QkvWeight, n, c, 3 * c);
        // Below layer 0 the next reader of dResidual is the embeddings' backward, not a GEMM.
        LayerNormBackwardForGemm(dResidual, p.Norm, s.Input, w.Norm1Weight, s.Mean1, s.Rstd1, n, c, roundsForGemm: layer > 0);
    }

    private protected override void DisposeModel()
    {
        plan?.Dispose();
        weights.Dispose();
    }

    /// <summary>y [n, out] = x [n, in] · W [in, out] + bias (+ residual when given) (Conv1D): one GEMM, the bias its epilogue, the residual its C.</summary>
    private void Linear(DeviceSpan<float> y, DeviceSpan<float> residual, GemmInput x, DeviceMatrix weight, DeviceSpan<float> bias, int n, int inDim, int outDim)
        => WeightGemm(n, outDim, inDim, x, weight, outDim, weightTransposed: false, residual.Length == 0 ? 0f : 1f, residual, y, outDim, GemmEpilogue<float>.WithBias(bias));

    /// <summary>
    /// y [n, out] bf16 = x [n, in] · W [in, out] + bias (Conv1D, bf16 W and bias): the sum rounded to bf16, plus the bias, rounded again (cuBLASLt's bf16 epilogue; c_attn's
    /// q|k|v, which only attention reads).
    /// </summary>
    private void LinearToBf16(DeviceSpan<ushort> y, GemmInput x, DeviceMatrix weight, DeviceSpan<ushort> bias, int n, int inDim, int outDim)
        => WeightGemm(n, outDim, inDim, x, weight, outDim, weightTransposed: false, y, outDim, GemmEpilogue<ushort>.WithBias(bias));

    /// <summary>
    /// c_fc: gelu(x · W + bias) into the plan's wide buffer (c_proj's operand, bf16 in bf16 precision) and x · W + bias into the
    /// layer's saved pre-activation, from one GEMM (in bf16 precision GELU reads the bf16 pre-activation it saves, as cuBLASLt
    /// computes a bf16 epilogue; in fp32 it reads the fp32 sum).
    /// </summary>
    private GemmInput LinearGelu(Gpt2DevicePlan.Layer s, Gpt2DevicePlan p, GemmInput x, DeviceMatrix weight, DeviceMatrix bias, int n, int inDim, int outDim)
    {
        long wide = (long)n * outDim;
        if (bf16)
        {
            var activated = p.WideBf16.Slice(0, wide);
            WeightGemm(n, outDim, inDim, x, weight, outDim, weightTransposed: false, activated, outDim, GemmEpilogue<ushort>.GeluSavingPreActivation(bias.Bf16, s.HiddenBf16, p.HiddenStride));
            return GemmInput.OfBf16(activated);
        }
        var y = p.Wide.Slice(0, wide);
        WeightGemm(n, outDim, inDim, x, weight, outDim, weightTransposed: false, 0f, default, y, outDim, GemmEpilogue<float>.GeluSavingPreActivation(bias.Fp32, s.Hidden, p.HiddenStride));
        return y;
    }

    /// <summary>dx [n, in] = dy [n, out] · Wᵀ for a Conv1D weight W [in, out].</summary>
    private void Conv1DInputGradient(DeviceSpan<float> dx, GemmInput dy, DeviceMatrix weight, int n, int inDim, int outDim)
        => WeightGemm(n, inDim, outDim, dy, weight, outDim, weightTransposed: true, 0f, dx);
}

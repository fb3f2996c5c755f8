using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// Llama-style models on a device (<see cref="CpuLlamaEngine{T}"/>'s forward and input-gradient-only reverse pass as kernels
/// plus GEMMs): pre-RMSNorm blocks of grouped-query attention with rotate-half RoPE and a SwiGLU MLP, nn.Linear weights
/// [out, in], biased only where the config says (Qwen2's q/k/v, Llama's attention_bias q/k/v/o: written into the output
/// before its GEMM accumulates, and never read backward, since a bias leaves the input gradients as they are). RoPE folds attention's 1/√hd into the query's rotation. Grouped-query attention: on the bf16
/// tensor-core kernels (head size 64 or 128) each query head reads its group's kv head in place and the kernel sums the group's
/// k/v gradients itself; otherwise each kv head is repeated for its query heads and the group's gradients summed back
/// (deterministic, no atomics) around the attention kernel, run without a bias. RoPE and attention run on each row's full sequence (where a position's angle is its index), the
/// rest on the shared rows (<see cref="DecoderOnlyDeviceEngine"/>).
/// </summary>
public sealed partial class CudaLlamaEngine : DecoderOnlyDeviceEngine
{
    private readonly LlamaConfig config;
    private readonly LlamaDeviceWeights weights;
    private readonly float attentionScale;
    private LlamaDevicePlan? plan;

    /// <param name="bf16">Store the block matrices in bf16 and run their GEMMs on bf16 tensor cores (<see cref="Precision.Bf16"/>).</param>
    public CudaLlamaEngine(IComputeDevice device, LlamaWeights<float> hostWeights, bool ownsDevice = false, bool bf16 = false)
        : this(device, hostWeights.Config, new HostWeightSource<LlamaWeights<float>>(hostWeights), ownsDevice, bf16) { }

    /// <param name="weights">Host weights, or a checkpoint streamed tensor by tensor (<see cref="LlamaCheckpoint.Open"/>).</param>
    internal CudaLlamaEngine(IComputeDevice device, LlamaConfig config, WeightSource<LlamaWeights<float>> weights, bool ownsDevice = false, bool bf16 = false)
        : base(device, ownsDevice, config.Embedding, config.VocabSize, config.SequenceLimit, config.Layers, bf16)
    {
        this.config = config;
        this.weights = LlamaDeviceWeights.Upload(device, config, weights, bf16);
        attentionScale = 1f / MathF.Sqrt(config.HeadSize);
    }

    private protected override DeviceSpan<ushort> Bf16Operands => runningDecoding?.Bf16Operands ?? plan!.Bf16Operands;

    private protected override DecoderDevicePlan CurrentPlan => plan ?? throw new InvalidOperationException("Run a batch first.");
    private protected override DeviceSpan<float> TokenEmbedding => weights.TokenEmbedding;
    private protected override DeviceSpan<float> PositionTable => plan!.ZeroPositions;
    private protected override DeviceMatrix HeadWeight => weights.HeadWeight;

    private protected override DecoderDevicePlan PlanFor(TokenBatch batch)
    {
        if (plan is null || !plan.Fits(batch, state.Layout!)) GrowPlan(batch, state.Layout!);
        return plan!;
    }

    // Apart from PlanFor so that the closure below is allocated only when a plan grows, never in a steady step.
    private void GrowPlan(TokenBatch batch, PromptLayout layout)
    {
        var (rows, positions, sequence) = LlamaDevicePlan.Capacity(config, batch, plan);
        bool recomputes = RecomputesNextPlan(r => LlamaDevicePlan.Measure(config, rows, positions, sequence, layout, bf16, r).Arena.Bytes, plan?.Arena.Bytes ?? 0);
        plan?.Dispose();
        plan = null;
        plan = LlamaDevicePlan.Allocate(device, config, rows, positions, sequence, layout, bf16, recomputes);
    }

    private protected override void BlockForward(int layer, bool recomputing)
    {
        var p = plan!;
        var s = p.Layers[layer];
        var w = weights.Layers[layer];
        var shared = p.Inputs.SharedRows;
        int n = step.Shared, d = config.Embedding, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        float eps = (float)config.RmsNormEpsilon;
        var normed = RmsNormForGemm(p.Norm, s.Rstd1, s.Input, w.AttentionNormWeight, n, d, eps);
        // q and k stay fp32 in bf16 precision too: RoPE rounds them once into attention's bf16 operands (see rope.cu).
        Project(s.Query, normed, w.Query, w.Bias.Query, n, d, att);
        Project(s.Key, normed, w.Key, w.Bias.Key, n, d, kv);
        if (bf16) ProjectToBf16(s.ValueBf16, normed, w.Value, w.Bias.Value.Bf16, n, d, kv);
        else Project(s.Value, normed, w.Value, w.Bias.Value.Fp32, n, d, kv);
        FullAttentionInputs(p, s);
        int rows = step.Rows, seq = step.Sequence, heads = config.Heads, hd = config.HeadSize;
        if (bf16)
        {
            var (keys, values, kvStride, kvHeads) = AttentionKeysAndValuesBf16(p);
            AttentionForward.Launch(device, p.AttentionFullBf16, att, s.LogSumExp, p.QueryFullBf16, att, keys, kvStride, values, kvStride,
                default, default, default, rows, seq, seq, heads, hd, causal: true, scale: 1f, keyValueHeads: kvHeads);
            GatherRows.Launch(device, s.AttentionBf16, p.AttentionFullBf16, shared.SharedToFull, n, att);
            ResidualWithBias(s.Middle, s.Input, GemmInput.OfBf16(s.AttentionBf16), w.Output, w.Bias.Output, n, att, d);
        }
        else
        {
            var (keys, values, kvStride, kvHeads) = AttentionKeysAndValues(p);
            AttentionForward.Launch(device, p.AttentionFull, att, s.LogSumExp, p.QueryFull, att, keys, kvStride, values, kvStride,
                default, default, default, rows, seq, seq, heads, hd, causal: true, scale: 1f, keyValueHeads: kvHeads);
            GatherRows.Launch(device, s.Attention, p.AttentionFull, shared.SharedToFull, n, att);
            ResidualWithBias(s.Middle, s.Input, s.Attention, w.Output, w.Bias.Output, n, att, d);
        }
        normed = RmsNormForGemm(p.Norm, s.Rstd2, s.Middle, w.MlpNormWeight, n, d, eps);
        if (bf16)
        {
            ProjectToBf16(s.GateBf16, normed, w.Gate, n, d, ff);
            ProjectToBf16(s.UpBf16, normed, w.Up, n, d, ff);
        }
        else
        {
            Project(s.Gate, normed, w.Gate, n, d, ff);
            Project(s.Up, normed, w.Up, n, d, ff);
        }
        if (recomputing) return;
        var activated = GemmInputBuffer(p.Wide, (long)n * ff);
        if (bf16) SwiGluForward.Launch(device, activated.Bf16, s.GateBf16, s.UpBf16, n * ff);
        else SwiGluForward.Launch(device, p.Wide, s.Gate, s.Up, n * ff);
        Residual(p.BlockInput(layer + 1), s.Middle, activated, w.Down, n, ff, d);
    }

    /// <summary>y [n, outDim] = x · Wᵀ + b, or x · Wᵀ when <paramref name="bias"/> is empty: the bias is the GEMM's epilogue.</summary>
    private void Project(DeviceSpan<float> y, GemmInput x, DeviceMatrix weight, DeviceSpan<float> bias, int n, int inDim, int outDim)
    {
        if (bias.Length == 0) Project(y, x, weight, n, inDim, outDim);
        else WeightGemm(n, outDim, inDim, x, weight, inDim, weightTransposed: true, 0f, default, y, outDim, GemmEpilogue<float>.WithBias(bias));
    }

    /// <summary>
    /// y [n, outDim] bf16 = x · Wᵀ + b (bf16 W and b), or x · Wᵀ when <paramref name="bias"/> is empty (one rounding); with a bias the sum rounded to bf16,
    /// plus the bias, rounded again (the bias is the GEMM's epilogue; PyTorch's bf16 linear on a GPU adds its bias likewise).
    /// </summary>
    private void ProjectToBf16(DeviceSpan<ushort> y, GemmInput x, DeviceMatrix weight, DeviceSpan<ushort> bias, int n, int inDim, int outDim)
    {
        if (bias.Length == 0) ProjectToBf16(y, x, weight, n, inDim, outDim);
        else WeightGemm(n, outDim, inDim, x, weight, inDim, weightTransposed: true, y, outDim, GemmEpilogue<ushort>.WithBias(bias));
    }

    /// <summary>y [n, outDim] = residual + x · Wᵀ (+ b when <paramref name="bias"/> is not empty): one GEMM with the residual as C.</summary>
    private void ResidualWithBias(DeviceSpan<float> y, DeviceSpan<float> residual, GemmInput x, DeviceMatrix weight, DeviceSpan<float> bias, int n, int inDim, int outDim)
    {
        if (bias.Length == 0) Residual(y, residual, x, weight, n, inDim, outDim);
        else WeightGemm(n, outDim, inDim, x, weight, inDim, weightTransposed: true, 1f, residual, y, outDim, GemmEpilogue<float>.WithBias(bias));
    }

    private protected override void FinalNormForward()
    {
        var p = plan!;
        RmsNormForward.Launch(device, p.FinalNorm, p.FinalRstd, p.Final, weights.FinalNormWeight, step.Shared, config.Embedding, (float)config.RmsNormEpsilon);
    }

    private protected override void FinalNormBackward(DeviceSpan<float> dResidual)
    {
        var p = plan!;
        RmsNormBackwardForGemm(dResidual, p.Gradient, p.Final, weights.FinalNormWeight, p.FinalRstd, step.Shared, config.Embedding);
    }

    /// <summary>
    /// x's input gradient from one of q/k/v's output gradients (fp32, full layout): summed over the shared rows straight into
    /// the GEMM's operand (bf16: rounded by the reduction, into bf16_operands, which the GEMM then reads at once), else into
    /// <paramref name="fp32"/>; added into p.Norm when <paramref name="accumulate"/>.
    /// </summary>
    private void ProjectionInputGradient(DeviceSpan<float> fp32, DeviceSpan<float> fullGradient, DeviceMatrix weight, int outDim, bool accumulate)
    {
        var p = plan!;
        var shared = p.Inputs.SharedRows;
        int n = step.Shared;
        var dy = GemmInputBuffer(fp32, (long)n * outDim);
        if (bf16) GatherSumRows.Launch(device, dy.Bf16, fullGradient, shared.ReduceStarts, shared.ReduceIndex, n, outDim);
        else GatherSumRows.Launch(device, fp32, fullGradient, shared.ReduceStarts, shared.ReduceIndex, n, outDim, accumulate: false);
        InputGradient(p.Norm, dy, weight, n, config.Embedding, outDim, accumulate);
    }

    // The zero row FullToSharedOrZero points repeated prompt positions at.
    private protected override void BeginBackward() => device.Zero(plan!.GradientAttention.Slice((long)step.Shared * config.AttentionSize, config.AttentionSize));

    /// <summary>The k and v attention reads (with their row stride and kv heads): narrow when it reads groups in place, else repeated.</summary>
    private (DeviceSpan<float> Keys, DeviceSpan<float> Values, int Stride, int Heads) AttentionKeysAndValues(LlamaDevicePlan p) =>
        p.GroupsInPlace ? (p.KeyNarrowFull, p.ValueNarrowFull, config.KeyValueSize, config.KeyValueHeads)
            : (p.KeyFull, p.ValueFull, config.AttentionSize, config.Heads);

    /// <summary><see cref="AttentionKeysAndValues"/> in bf16 precision.</summary>
    private (DeviceSpan<ushort> Keys, DeviceSpan<ushort> Values, int Stride, int Heads) AttentionKeysAndValuesBf16(LlamaDevicePlan p) =>
        p.GroupsInPlace ? (p.KeyNarrowFullBf16, p.ValueNarrowFullBf16, config.KeyValueSize, config.KeyValueHeads)
            : (p.KeyFullBf16, p.ValueFullBf16, config.AttentionSize, config.Heads);

    /// <summary>
    /// Attention's inputs in the full layout, from a layer's shared-row projections: q rotated and scaled by 1/√hd, k rotated
    /// (position = index in the row's sequence, the prompt counting), and, unless attention reads the groups in place, k
    /// and v repeated to every query head. The forward computes them, and the reverse pass again (cheaper than keeping them
    /// per layer). In bf16 precision all of it in bf16: RoPE rotates the fp32 q/k rows as it gathers them, rounding once.
    /// </summary>
    private void FullAttentionInputs(LlamaDevicePlan p, LlamaDevicePlan.Layer s)
    {
        int full = step.Full, rows = step.Rows, seq = step.Sequence, heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize;
        var shared = p.Inputs.SharedRows;
        if (bf16)
        {
            RopeGatherBf16.Launch(device, p.QueryFullBf16, s.Query, shared.FullToShared, weights.RopeCos, weights.RopeSin, rows, seq, heads, hd, attentionScale);
            RopeGatherBf16.Launch(device, p.KeyNarrowFullBf16, s.Key, shared.FullToShared, weights.RopeCos, weights.RopeSin, rows, seq, kvHeads, hd, 1f);
            GatherRows.Launch(device, p.ValueNarrowFullBf16, s.ValueBf16, shared.FullToShared, full, kv);
            if (p.GroupsInPlace) return;
            RepeatKeyValueHeads.Launch(device, p.KeyFullBf16, p.KeyNarrowFullBf16, full, heads, kvHeads, hd);
            RepeatKeyValueHeads.Launch(device, p.ValueFullBf16, p.ValueNarrowFullBf16, full, heads, kvHeads, hd);
            return;
        }
        GatherRows.Launch(device, p.QueryFull, s.Query, shared.FullToShared, full, att);
        RopeForward.Launch(device, p.QueryFull, weights.RopeCos, weights.RopeSin, rows, seq, heads, hd, attentionScale);
        GatherRows.Launch(device, p.KeyNarrowFull, s.Key, shared.FullToShared, full, kv);
        RopeForward.Launch(device, p.KeyNarrowFull, weights.RopeCos, weights.RopeSin, rows, seq, kvHeads, hd, 1f);
        GatherRows.Launch(device, p.ValueNarrowFull, s.Value, shared.FullToShared, full, kv);
        if (p.GroupsInPlace) return;
        RepeatKeyValueHeads.Launch(device, p.KeyFull, p.KeyNarrowFull, full, heads, kvHeads, hd);
        RepeatKeyValueHeads.Launch(device, p.ValueFull, p.ValueNarrowFull, full, heads, kvHeads, hd);
    }

    private protected override void BlockBackward(int layer, DeviceSpan<float> dResidual)
    {
        var p = plan!;
        var shared = p.Inputs.SharedRows;
        int rows = step.Rows, seq = step.Sequence, full = step.Full, n = step.Shared, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        var s = p.Layers[layer];
        var w = weights.Layers[layer];
        InputGradient(p.Wide, ResidualGradientOperand(dResidual), w.Down, n, ff, d);
        // In bf16 SwiGLU writes its input gradients in bf16 where the gate/up input-gradient GEMMs read them.
        var dGate = GemmInputBuffer(p.GradientGate, (long)n * ff);
        var dUp = bf16 ? GemmInput.OfBf16(p.GradientUpBf16) : p.GradientUp;
        if (bf16) SwiGluBackward.Launch(device, dGate.Bf16, dUp.Bf16, p.Wide, s.GateBf16, s.UpBf16, n * ff);
        else SwiGluBackward.Launch(device, p.GradientGate, p.GradientUp, p.Wide, s.Gate, s.Up, n * ff);
        InputGradient(p.Norm, dGate, w.Gate, n, d, ff);
        InputGradient(p.Norm, dUp, w.Up, n, d, ff, accumulate: true);
        RmsNormBackwardForGemm(dResidual, p.Norm, s.Middle, w.MlpNormWeight, s.Rstd2, n, d);

        // Attention's backward on the full layout: a shared prompt position's output gradient enters once (from the first
        // row using it); every row's gradients at its prompt positions then add up on the shared row.
        InputGradient(p.GradientAttention, ResidualGradientOperand(dResidual), w.Output, n, att, d);
        GatherRows.Launch(device, p.GradientAttentionFull, p.GradientAttention, shared.FullToSharedOrZero, full, att);
        FullAttentionInputs(p, s);
        // In place, the kernel writes each kv head's gradient (summed over its group) into the narrow gradient buffers;
        // otherwise the repeated heads' gradients are summed back into the (fp32: now free) narrow k/v buffers.
        var (dKeys, dValues) = p.GroupsInPlace ? (p.GradientKeyFull, p.GradientValueFull) : (p.KeyNarrowFull, p.ValueNarrowFull);
        if (bf16)
        {
            GatherRows.Launch(device, p.AttentionFullBf16, s.AttentionBf16, shared.FullToShared, full, att);
            var (keys, values, kvStride, attentionKvHeads) = AttentionKeysAndValuesBf16(p);
            AttentionBackward.Launch(device, p.GradientQueryFull, att, p.GradientKeyFull, kvStride, p.GradientValueFull, kvStride, p.GradientAttentionFull, att,
                p.QueryFullBf16, att, keys, kvStride, values, kvStride, p.AttentionFullBf16, att, s.LogSumExp, p.AttentionScratch, default, default, default,
                rows, seq, seq, heads, hd, causal: true, scale: 1f, keyValueHeads: attentionKvHeads);
        }
        else
        {
            GatherRows.Launch(device, p.AttentionFull, s.Attention, shared.FullToShared, full, att);
            var (keys, values, kvStride, attentionKvHeads) = AttentionKeysAndValues(p);
            AttentionBackward.Launch(device, p.GradientQueryFull, att, p.GradientKeyFull, kvStride, p.GradientValueFull, kvStride, p.GradientAttentionFull, att,
                p.QueryFull, att, keys, kvStride, values, kvStride, p.AttentionFull, att, s.LogSumExp, p.AttentionScratch, default, default, default,
                rows, seq, seq, heads, hd, causal: true, scale: 1f, keyValueHeads: attentionKvHeads);
        }
        if (!p.GroupsInPlace)
        {
            SumKeyValueGroups.Launch(device, dKeys, p.GradientKeyFull, full, heads, kvHeads, hd);
            SumKeyValueGroups.Launch(device, dValues, p.GradientValueFull, full, heads, kvHeads, hd);
        }
        RopeBackward.Launch(device, p.GradientQueryFull, weights.RopeCos, weights.RopeSin, rows, seq, heads, hd, attentionScale);
        RopeBackward.Launch(device, dKeys, weights.RopeCos, weights.RopeSin, rows, seq, kvHeads, hd, 1f);
        // In bf16 the three share bf16_operands: each reduction is read by its GEMM before the next one writes.
        ProjectionInputGradient(p.GradientQuery, p.GradientQueryFull, w.Query, att, accumulate: false);
        ProjectionInputGradient(p.KeyNarrow, dKeys, w.Key, kv, accumulate: true);
        ProjectionInputGradient(p.ValueNarrow, dValues, w.Value, kv, accumulate: true);
        // Below layer 0 the next reader of dResidual is the embeddings' backward, not a GEMM.
        RmsNormBackwardForGemm(dResidual, p.Norm, s.Input, w.AttentionNormWeight, s.Rstd1, n, d, roundsForGemm: layer > 0);
    }

    private protected override void DisposeModel()
    {
        plan?.Dispose();
        weights.Dispose();
    }
}

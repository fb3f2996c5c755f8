using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// What every CUDA engine shares, on any <see cref="IComputeDevice"/> (a real GPU, or the kernel emulator): the prompts
/// with their gradient and optimizer (<see cref="DevicePromptState"/>), the order of a training step (forward to the
/// loss, then the input-gradient-only reverse pass), scoring, and the two GEMMs a frozen nn.Linear layer needs. A family
/// supplies its forward and reverse pass over its own weights and plan; a step queues everything on the device's stream
/// and waits only to read the loss.
/// </summary>
public abstract class DeviceEngine : IDeviceEngine
{
    private readonly bool ownsDevice;
    private protected readonly IComputeDevice device;
    private protected readonly DevicePromptState state;
    /// <summary>Multiplies the next reverse pass's gradient (see IPromptEngine.ForwardBackward).</summary>
    private protected float lossGradientWeight = 1f;
    /// <summary>Whether the engine runs in bf16 precision (its weights, plans and kernels follow).</summary>
    private protected readonly bool bf16;

    /// <param name="bf16">bf16 precision: block matrices and the LM head stored bf16, GEMMs on bf16 tensor cores (<see cref="Precision.Bf16"/>).</param>
    private protected DeviceEngine(IComputeDevice device, bool ownsDevice, int embeddingSize, int vocabSize, int maxPositions, bool bf16)
    {
        this.device = device;
        this.bf16 = bf16;
        this.ownsDevice = ownsDevice;
        EmbeddingSize = embeddingSize;
        VocabSize = vocabSize;
        MaxPositions = maxPositions;
        state = new DevicePromptState(device, embeddingSize);
    }

    /// <summary>What the next plan keeps for the reverse pass (<see cref="Engines.Recomputation"/>); a plan already allocated keeps its choice until it grows.</summary>
    public Recomputation Recomputation { get; set; } = Recomputation.Auto;

    /// <summary>
    /// Whether the next plan recomputes each layer: asked, or (Auto) when the full plan would not fit the device's free
    /// memory, the plan it replaces counted as free. A plan that cannot fit either way is refused before any allocation.
    /// </summary>
    /// <param name="planBytes">The plan's bytes for the batch, keeping every layer (false) or recomputing (true).</param>
    private protected bool RecomputesNextPlan(Func<bool, long> planBytes, long replacedPlanBytes)
    {
        long available = SaturatingAdd(device.FreeMemoryBytes, replacedPlanBytes);
        long full = planBytes(false);
        bool recomputes = RecomputationPolicy.Recomputes(Recomputation, full, available);
        long needed = recomputes ? planBytes(true) : full;
        if (needed > available)
            throw new InvalidOperationException($"This batch's device plan needs {needed / 1048576.0:F0} MiB{(recomputes ? " with every layer recomputed" : "")}, " +
                $"the {device.Kind} device has {available / 1048576.0:F0} MiB free: use a smaller `TrainOptions.BatchSize` or shorter rows" +
                (Recomputation == Recomputation.Off ? ", or let the engine recompute layers (`recomputation` auto)." : "."));
        return recomputes;
    }

    /// <summary>Whether the plan of the last batch recomputes each layer in the reverse pass.</summary>
    public abstract bool RecomputesActivations { get; }

    private static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;

    public string DeviceName => device.Kind;
    public IComputeDevice Device => device;
    public int EmbeddingSize { get; }
    public int VocabSize { get; }
    public int MaxPositions { get; }
    public int PromptCount => state.PromptCount;
    public PromptLayout? PromptLayout => state.Layout;

    public void LoadPrompts(ReadOnlySpan<float> values, PromptLayout layout) => state.Load(values, layout);
    public void LoadPrompts(ReadOnlySpan<float> values, int promptCount, int promptLength) => state.Load(values, Engines.PromptLayout.Uniform(promptCount, promptLength));
    public void ReadPrompts(Span<float> destination) => state.ReadPrompts(destination);
    public void ReadPromptGradient(Span<float> destination) => state.ReadGradient(destination);
    public void WritePromptGradient(ReadOnlySpan<float> source) => state.WriteGradient(source);
    /// <summary>dLoss/dPrompt where it lives on the device, for a collective that sums it in place (NCCL).</summary>
    internal DeviceSpan<float> PromptGradientOnDevice => state.PromptGradient;
    public int OptimizerStateLength => state.OptimizerStateLength;
    public void ReadOptimizerState(Span<float> destination) => state.ReadOptimizerState(destination);
    public void LoadOptimizerState(ReadOnlySpan<float> source) => state.LoadOptimizerState(source);
    public float LastGradientNorm => state.LastGradientNorm;
    public void ReadGradientNorms(Span<float> destination) => state.ReadGradientNorms(destination);
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale = 1f)
        => state.OptimizerStep(settings, step, learningRate, gradientScale);

    public float Forward(TokenBatch batch)
    {
        float loss = RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: true);
        state.ThrowIfDiverged();
        return loss;
    }

    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f)
    {
        lossGradientWeight = gradientWeight;
        float loss = RunForward(batch, withGradient: true, countGreedyMatches: false, languageModelHead: true);
        // The loss read waited for the device: the divergence count of the steps before is 4 more bytes, no extra sync.
        state.ThrowIfDiverged();
        RunBackward(accumulate);
        return loss;
    }

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        BatchChecks.ScoreBuffers(batch, rowLogLikelihood, rowGreedyMatches);
        RunForward(batch, withGradient: false, countGreedyMatches: !rowGreedyMatches.IsEmpty, languageModelHead: true);
        Head.ScoreRows(batch.Rows, rowLogLikelihood, rowGreedyMatches);
    }

    /// <summary>The LM head of the plan the last forward pass ran on.</summary>
    private protected abstract DeviceLanguageModelHead Head { get; }

    /// <summary>The forward pass of <paramref name="batch"/>: the mean target loss when <paramref name="languageModelHead"/> (else 0, for decoding), saving what the reverse pass needs when <paramref name="withGradient"/>.</summary>
    private protected abstract float RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead);

    /// <summary>The reverse pass of the last forward pass into the prompt gradient (replacing it, or adding when <paramref name="accumulate"/>).</summary>
    private protected abstract void RunBackward(bool accumulate);

    /// <summary>Frees the family's weights and plan.</summary>
    private protected abstract void DisposeModel();

    public void Dispose()
    {
        DisposeModel();
        state.Dispose();
        if (ownsDevice) device.Dispose();
    }

    /// <summary>y [n, outDim] (=, or += when accumulating) x [n, inDim] · Wᵀ with W [outDim, inDim] (nn.Linear, no bias).</summary>
    private protected void Project(DeviceSpan<float> y, GemmInput x, DeviceMatrix weight, int n, int inDim, int outDim, bool accumulate = false)
        => WeightGemm(n, outDim, inDim, x, weight, inDim, weightTransposed: true, accumulate ? 1f : 0f, y);

    /// <summary>y [n, outDim] = residual + x · Wᵀ in one GEMM that reads the residual as its C and writes y (no copy of it first).</summary>
    private protected void Residual(DeviceSpan<float> y, DeviceSpan<float> residual, GemmInput x, DeviceMatrix weight, int n, int inDim, int outDim)
        => WeightGemm(n, outDim, inDim, x, weight, inDim, weightTransposed: true, 1f, residual, y, outDim, GemmEpilogue<float>.Plain);

    /// <summary>
    /// y [n, outDim] bf16 (=, or += when accumulating) x [n, inDim] · Wᵀ with a bf16 W, summed in fp32 and rounded once: a
    /// pre-activation that only bf16 kernels read (the MLP's up projections in bf16 precision).
    /// </summary>
    private protected void ProjectToBf16(DeviceSpan<ushort> y, GemmInput x, DeviceMatrix weight, int n, int inDim, int outDim, bool accumulate = false)
        => WeightGemm(n, outDim, inDim, x, weight, inDim, weightTransposed: true, accumulate ? 1f : 0f, y);

    /// <summary>dx [n, inDim] (=, or += when accumulating) dy [n, outDim] · W, W [outDim, inDim]: the only GEMM a frozen layer needs backward.</summary>
    private protected void InputGradient(DeviceSpan<float> dx, GemmInput dy, DeviceMatrix weight, int n, int inDim, int outDim, bool accumulate = false)
        => WeightGemm(n, inDim, outDim, dy, weight, inDim, weightTransposed: false, accumulate ? 1f : 0f, dx);

    /// <summary>The current plan's room for a bf16 copy of a GEMM's activation operand (empty while the weights are fp32).</summary>
    private protected virtual DeviceSpan<ushort> Bf16Operands => default;

    /// <summary>The current plan's bf16 copy of the residual gradient, written by the norm backward that last updated it (empty while the weights are fp32).</summary>
    private protected virtual DeviceSpan<ushort> ResidualGradientBf16 => default;

    /// <summary>The residual gradient [n, width] as the operand of the GEMM that reads it next: in bf16 precision the copy the last norm backward rounded.</summary>
    private protected GemmInput ResidualGradientOperand(DeviceSpan<float> dResidual, long count) =>
        bf16 ? GemmInput.OfBf16(ResidualGradientBf16.Slice(0, count)) : dResidual;

    // Which activations are bf16 in bf16 precision, decided here once. An activation that only bf16 GEMMs read is written
    // in bf16 by the kernel that makes it, into Bf16Operands: the norm outputs (LayerNorm, RMSNorm, T5's RMS norm) and the
    // MLP activation outputs (GELU, ReLU, gated GELU, SwiGLU) — bit for bit what convert_to_bf16 made of their fp32 form,
    // without that pass, and once for the q/k/v (gate/up) GEMMs that share one norm output; likewise T5's encoder output,
    // which only the decoder's cross-attention k/v GEMMs read (its own bf16 tensor in the plan). The MLP pre-activations
    // (GPT-2's c_fc output with its bias, Llama's gate and up, T5's wi / wi_0 and wi_1) are bf16 GEMM outputs (fp32 sums
    // rounded once, as PyTorch's bf16 autocast keeps them), saved in bf16 for the reverse pass; the activation's backward
    // reads them with the fp32 gradient from the down projection and writes d(pre-activation) in bf16, straight into the
    // operand of the up projections' input-gradient GEMMs (GPT-2: c_fc's GEMM applies GELU and saves the pre-activation
    // as its epilogue, and the GEMM through c_proj multiplies by GELU's derivative as its epilogue, writing that operand
    // itself). Kept fp32: the residual stream (it sums every layer's small
    // updates; bf16 would drop them), norm statistics, scores, softmax and lse (accumulated in fp32 inside attention), the
    // loss, the final norm's output (the LM head gathers its target rows and rounds only those), and every gradient that is not
    // only a GEMM operand (the prompt gradient is the product; the accuracy bar is on it), attention's dout and dq/dk/dv
    // included (summed over shared prompt rows). q/k/v and the attention output are bf16 in memory: the q/k/v GEMMs write
    // bf16 (their bf16 bias added to the fp32 sum by the GEMM's epilogue, one rounding), the plan saves them and the attention output in bf16, the
    // gathers move bf16, attention reads and writes bf16 (the launchers' DeviceSpan<ushort> overloads: tensor cores at hs
    // 64/128, SIMT kernels reading bf16 elsewhere) and the output projection reads the output as its GEMM operand — GPT-2,
    // T5 (encoder self, decoder self and cross attention), Llama with one exception: its q/k are fp32 GEMM outputs that
    // RoPE rounds once while gathering them into attention's bf16 operands (rounding before RoPE too, as PyTorch does,
    // broke the accuracy bar on the head-size-64 fixture: loss 3.18× PyTorch's). The cached decoding step rounds its MLP
    // pre-activations the same way (bf16 inner buffers) and its q/k/v to the full forward's bf16 values (widened or
    // round_to_bf16 for the fp32 KV cache), so its logits stay those of a full forward.

    /// <summary>The activation operand of a GEMM: fp32 (rounded into <see cref="Bf16Operands"/> when the weight is bf16), or already bf16.</summary>
    private protected readonly record struct GemmInput(DeviceSpan<float> Fp32, DeviceSpan<ushort> Bf16)
    {
        public static implicit operator GemmInput(DeviceSpan<float> fp32) => new(fp32, default);
        public static GemmInput OfBf16(DeviceSpan<ushort> bf16) => new(default, bf16);
    }

    /// <summary>
    /// Where a kernel writes an activation that only GEMMs read: <see cref="Bf16Operands"/>' first <paramref name="count"/>
    /// elements when the weights are bf16 (<see cref="bf16"/>), else <paramref name="fp32"/>.
    /// </summary>
    private protected GemmInput GemmInputBuffer(DeviceSpan<float> fp32, long count)
    {
        if (!bf16) return fp32;
        if (Bf16Operands.Length < count) throw new InvalidOperationException($"The plan holds {Bf16Operands.Length} bf16 operand elements, an activation needs {count}.");
        return GemmInput.OfBf16(Bf16Operands.Slice(0, count));
    }

    /// <summary>LayerNorm of x [n, c] (saving mean and rstd) into the operand of the GEMM that follows: bf16 when <see cref="bf16"/>, else <paramref name="fp32"/>.</summary>
    private protected GemmInput LayerNormForGemm(DeviceSpan<float> fp32, DeviceSpan<float> mean, DeviceSpan<float> rstd, DeviceSpan<float> x,
        DeviceSpan<float> weight, DeviceSpan<float> bias, int n, int c, float epsilon)
    {
        var normed = GemmInputBuffer(fp32, (long)n * c);
        if (bf16) LayerNormForward.Launch(device, normed.Bf16, mean, rstd, x, weight, bias, n, c, epsilon);
        else LayerNormForward.Launch(device, fp32, mean, rstd, x, weight, bias, n, c, epsilon);
        return normed;
    }

    /// <summary>RMSNorm of x [n, d] (saving rstd) into the operand of the GEMMs that follow: bf16 when <see cref="bf16"/>, else <paramref name="fp32"/>.</summary>
    private protected GemmInput RmsNormForGemm(DeviceSpan<float> fp32, DeviceSpan<float> rstd, DeviceSpan<float> x, DeviceSpan<float> weight, int n, int d, float epsilon)
    {
        var normed = GemmInputBuffer(fp32, (long)n * d);
        if (bf16) RmsNormForward.Launch(device, normed.Bf16, rstd, x, weight, n, d, epsilon);
        else RmsNormForward.Launch(device, fp32, rstd, x, weight, n, d, epsilon);
        return normed;
    }

    /// <summary>
    /// A LayerNorm's input gradient added into the residual gradient dResidual [n, c]; in bf16 precision with
    /// <paramref name="roundsForGemm"/> the same kernel also rounds the updated gradient into <see cref="ResidualGradientBf16"/>,
    /// for the GEMM that reads it next (<see cref="ResidualGradientOperand"/>).
    /// </summary>
    private protected void LayerNormBackwardForGemm(DeviceSpan<float> dResidual, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> mean, DeviceSpan<float> rstd, int n, int c, bool roundsForGemm = true)
    {
        if (bf16 && roundsForGemm) LayerNormBackward.Launch(device, dResidual, ResidualGradientBf16, dy, x, weight, mean, rstd, n, c);
        else LayerNormBackward.Launch(device, dResidual, dy, x, weight, mean, rstd, n, c);
    }

    /// <summary>The same for an RMSNorm (Llama's, T5's).</summary>
    private protected void RmsNormBackwardForGemm(DeviceSpan<float> dResidual, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> rstd, int n, int d, bool roundsForGemm = true)
    {
        if (bf16 && roundsForGemm) RmsNormBackward.Launch(device, dResidual, ResidualGradientBf16, dy, x, weight, rstd, n, d);
        else RmsNormBackward.Launch(device, dResidual, dy, x, weight, rstd, n, d);
    }

    /// <summary>
    /// c [m, n] = x [m, k] · op(W) + beta·c with the activation x dense (ld k) and W stored with <paramref name="weightLd"/>.
    /// A bf16 W multiplies x as it is when x is bf16, else a bf16 copy of it (rounded to nearest even into
    /// <see cref="Bf16Operands"/>), on tensor cores with fp32 sums.
    /// </summary>
    private protected void WeightGemm(int m, int n, int k, GemmInput x, DeviceMatrix weight, int weightLd, bool weightTransposed, float beta, DeviceSpan<float> c)
    {
        if (!weight.IsBf16)
        {
            if (x.Bf16.Length > 0) throw new InvalidOperationException("A bf16 activation meets an fp32 weight: the engine's precision is mixed up.");
            device.Gemm(m, n, k, 1f, new GemmOperand(x.Fp32, k), new GemmOperand(weight.Fp32, weightLd, weightTransposed), beta, new GemmOperand(c, n));
            return;
        }
        device.GemmBf16(m, n, k, 1f, new Bf16GemmOperand(Bf16Operand(x, m, k), k), new Bf16GemmOperand(weight.Bf16, weightLd, weightTransposed), beta, new GemmOperand(c, n));
    }

    /// <summary>The same GEMM into a bf16 c (read as bf16 when beta ≠ 0), each output rounded once; W must be bf16.</summary>
    private protected void WeightGemm(int m, int n, int k, GemmInput x, DeviceMatrix weight, int weightLd, bool weightTransposed, float beta, DeviceSpan<ushort> c)
    {
        if (!weight.IsBf16) throw new InvalidOperationException("A bf16 GEMM output needs a bf16 weight: the engine's precision is mixed up.");
        device.GemmBf16(m, n, k, 1f, new Bf16GemmOperand(Bf16Operand(x, m, k), k), new Bf16GemmOperand(weight.Bf16, weightLd, weightTransposed), beta, new Bf16GemmOperand(c, n));
    }

    /// <summary>
    /// d [m, n] (ld <paramref name="ldd"/>) = epilogue(x [m, k] · op(W) + beta·c) in one GEMM (cuBLASLt): the bias, GELU or GELU's
    /// gradient are applied to the fp32 sum before d is stored, with no pass of their own; c (read when beta ≠ 0) has d's ld.
    /// </summary>
    private protected void WeightGemm(int m, int n, int k, GemmInput x, DeviceMatrix weight, int weightLd, bool weightTransposed, float beta, DeviceSpan<float> c,
        DeviceSpan<float> d, int ldd, GemmEpilogue<float> epilogue)
    {
        if (!weight.IsBf16)
        {
            if (x.Bf16.Length > 0) throw new InvalidOperationException("A bf16 activation meets an fp32 weight: the engine's precision is mixed up.");
            device.GemmEpilogue(m, n, k, 1f, new GemmOperand(x.Fp32, k), new GemmOperand(weight.Fp32, weightLd, weightTransposed), beta, new GemmOperand(c, ldd), new GemmOperand(d, ldd), epilogue);
            return;
        }
        device.GemmEpilogue(m, n, k, 1f, new Bf16GemmOperand(Bf16Operand(x, m, k), k), new Bf16GemmOperand(weight.Bf16, weightLd, weightTransposed), beta,
            new GemmOperand(c, ldd), new GemmOperand(d, ldd), epilogue);
    }

    /// <summary>The same GEMM into a bf16 d (and bf16 aux), reading no c; W must be bf16.</summary>
    private protected void WeightGemm(int m, int n, int k, GemmInput x, DeviceMatrix weight, int weightLd, bool weightTransposed, DeviceSpan<ushort> d, int ldd, GemmEpilogue<ushort> epilogue)
    {
        if (!weight.IsBf16) throw new InvalidOperationException("A bf16 GEMM output needs a bf16 weight: the engine's precision is mixed up.");
        device.GemmEpilogue(m, n, k, 1f, new Bf16GemmOperand(Bf16Operand(x, m, k), k), new Bf16GemmOperand(weight.Bf16, weightLd, weightTransposed), 0f,
            default, new Bf16GemmOperand(d, ldd), epilogue);
    }

    /// <summary>The bf16 operand x [m, k] of a bf16 GEMM: x as it is when bf16, else its copy rounded into <see cref="Bf16Operands"/>.</summary>
    private DeviceSpan<ushort> Bf16Operand(GemmInput x, int m, int k)
    {
        long count = (long)m * k;
        if (x.Bf16.Length > 0)
        {
            if (x.Bf16.Length < count) throw new InvalidOperationException($"A bf16 GEMM operand holds {x.Bf16.Length} elements, the GEMM needs {count} (m={m}, k={k}).");
            return x.Bf16.Slice(0, count);
        }
        if (Bf16Operands.Length < count) throw new InvalidOperationException($"The plan holds {Bf16Operands.Length} bf16 operand elements, a GEMM needs {count} (m={m}, k={k}).");
        var operand = Bf16Operands.Slice(0, count);
        ConvertToBf16.Launch(device, operand, x.Fp32.Slice(0, count));
        return operand;
    }
}

using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// The GPT-2 fast path: the CPU engine's forward and input-gradient-only reverse pass as handwritten kernels
/// plus GEMMs, on any <see cref="IComputeDevice"/> (a real GPU, or the kernel emulator). Weights are uploaded
/// once into one allocation; activations live in one plan per (rows, sequence) capacity, reused step after
/// step; a step queues everything on the device's stream and waits only to read the loss.
/// Each prompt's positions are computed once per batch, however many rows use it (<see cref="SharedPromptRows"/>):
/// every position-wise op and GEMM runs on the shared rows, attention on each row's full sequence gathered from them.
/// </summary>
public sealed class CudaGpt2Engine : IDeviceEngine
{
    /// <summary>Multiplies the next backward pass's gradient (see IPromptEngine.ForwardBackward).</summary>
    private float lossGradientWeight = 1f;
    private readonly IComputeDevice device;
    private readonly bool ownsDevice;
    private readonly Gpt2Config config;
    private readonly Gpt2DeviceWeights weights;
    private Gpt2DevicePlan? plan;
    private readonly DevicePromptState state;
    private int lastRows, lastSequence, lastShared;

    public CudaGpt2Engine(IComputeDevice device, Gpt2Weights<float> hostWeights, bool ownsDevice = false)
    {
        this.device = device;
        this.ownsDevice = ownsDevice;
        config = hostWeights.Config;
        weights = new Gpt2DeviceWeights(device, hostWeights);
        state = new DevicePromptState(device, config.Embedding);
    }

    public string DeviceName => device.Kind;
    public IComputeDevice Device => device;
    public int EmbeddingSize => config.Embedding;
    public int VocabSize => config.VocabSize;
    public int MaxPositions => config.MaxPositions;
    public int PromptCount => state.PromptCount;
    public PromptLayout? PromptLayout => state.Layout;

    public void LoadPrompts(ReadOnlySpan<float> values, PromptLayout layout) => state.Load(values, layout);
    public void LoadPrompts(ReadOnlySpan<float> values, int promptCount, int promptLength) => state.Load(values, Engines.PromptLayout.Uniform(promptCount, promptLength));
    public void ReadPrompts(Span<float> destination) => state.ReadPrompts(destination);
    public void ReadPromptGradient(Span<float> destination) => state.ReadGradient(destination);
    public int OptimizerStateLength => state.OptimizerStateLength;
    public void ReadOptimizerState(Span<float> destination) => state.ReadOptimizerState(destination);
    public void LoadOptimizerState(ReadOnlySpan<float> source) => state.LoadOptimizerState(source);
    public float LastGradientNorm => state.LastGradientNorm;
    public void ReadGradientNorms(Span<float> destination) => state.ReadGradientNorms(destination);
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale = 1f)
        => state.OptimizerStep(settings, step, learningRate, gradientScale);
    public float Forward(TokenBatch batch) => RunForward(batch, withGradient: false);

    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f)
    {
        lossGradientWeight = gradientWeight;
        float loss = RunForward(batch, withGradient: true);
        RunBackward(accumulate);
        return loss;
    }

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        if (rowLogLikelihood.Length < batch.Rows) throw new ArgumentException($"Score buffer holds {rowLogLikelihood.Length} rows, the batch has {batch.Rows}.");
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches && rowGreedyMatches.Length < batch.Rows) throw new ArgumentException($"Match buffer holds {rowGreedyMatches.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, countGreedyMatches: matches);
        plan!.Head.ScoreRows(plan.Inputs, batch.Rows, rowLogLikelihood, rowGreedyMatches);
    }

    /// <summary>Full logits [B, T, V] at every position (tests and generation; training never materialises these).</summary>
    public void Logits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false);
        int n = batch.Rows * batch.SequenceLength;
        if (logits.Length < (long)n * config.VocabSize) throw new ArgumentException($"Logits buffer needs {(long)n * config.VocabSize} values.");
        using var all = device.Allocate<float>((long)n * config.VocabSize);
        GatherRows.Launch(device, plan!.AttentionFull, plan.FinalNorm, plan.Inputs.SharedRows.FullToShared, n, config.Embedding);
        device.Gemm(n, config.VocabSize, config.Embedding, 1f, new GemmOperand(plan.AttentionFull, config.Embedding),
            new GemmOperand(weights.TokenEmbedding, config.Embedding, Transposed: true), 0f, new GemmOperand(all.Span, config.VocabSize));
        device.CopyToHost(all.Span, logits[..(n * config.VocabSize)]);
    }

    public void Dispose()
    {
        plan?.Dispose();
        state.Dispose();
        weights.Dispose();
        if (ownsDevice) device.Dispose();
    }

    public void NextTokenLogits(TokenBatch batch, Span<float> logits)
    {
        int vocab = config.VocabSize, c = config.Embedding;
        if (logits.Length < (long)batch.Rows * vocab) throw new ArgumentException($"Logits buffer holds {logits.Length} values, {batch.Rows} rows × {vocab} need {(long)batch.Rows * vocab}.");
        RunForward(batch, withGradient: false, languageModelHead: false);
        plan!.Head.NextTokenLogits(batch, plan.Inputs, plan.FinalNorm, weights.TokenEmbedding, logits);
    }

    public void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, languageModelHead: false);
        plan!.Head.NextTokenLogits(batch, plan.Inputs, plan.FinalNorm, weights.TokenEmbedding, default, tokens);
    }

    private Gpt2DevicePlan Plan(TokenBatch batch)
    {
        int n = batch.Rows * batch.SequenceLength;
        var layout = state.Layout!;
        if (plan is null || plan.Positions < n || plan.Rows < batch.Rows || !plan.Layout.Equals(layout))
        {
            int rows = Math.Max(batch.Rows, batch.RowCapacity), positions = Math.Max(n, batch.RowCapacity * (batch.LongestPrompt + batch.TokenCapacity));
            if (plan is not null) (rows, positions) = (Math.Max(rows, plan.Rows), Math.Max(positions, plan.Positions));
            plan?.Dispose();
            plan = new Gpt2DevicePlan(device, config, rows, positions, layout);
        }
        return plan;
    }

    private float RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches = false, bool languageModelHead = true)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, config.VocabSize, config.MaxPositions, requireTargets: languageModelHead);
        var p = Plan(batch);
        int rows = batch.Rows, seq = batch.SequenceLength, full = rows * seq, c = config.Embedding, inner = config.Inner;
        float eps = (float)config.LayerNormEpsilon;
        var inputs = p.Inputs;
        inputs.Upload(batch);
        var shared = inputs.SharedRows;
        int n = shared.Shared;
        lastRows = rows;
        lastSequence = seq;
        lastShared = n;

        // The embeddings of the full layout, then each shared row's (a prompt position from the first row using it).
        var first = config.Layers > 0 ? p.Layers[0].Input : p.Final;
        EmbeddingForward.Launch(device, p.AttentionFull.Slice(0, (long)full * c), inputs.Tokens.Slice(0, rows * batch.TokenLength), state.Prompts, inputs.PromptIndex.Slice(0, rows),
            state.Offsets, weights.TokenEmbedding, weights.PositionEmbedding, rows, seq, batch.TokenLength, c);
        GatherRows.Launch(device, first, p.AttentionFull, shared.SharedToFull, n, c);
        for (int l = 0; l < config.Layers; l++)
        {
            var s = p.Layers[l];
            var w = weights.Layers[l];
            LayerNormForward.Launch(device, p.Norm, s.Mean1, s.Rstd1, s.Input, w.Norm1Weight, w.Norm1Bias, n, c, eps);
            Linear(s.Qkv, default, p.Norm, w.QkvWeight, w.QkvBias, n, c, 3 * c);
            GatherRows.Launch(device, p.QkvFull, s.Qkv, shared.FullToShared, full, 3 * c);
            FusedQkvAttention.Forward(device, p.AttentionFull, s.LogSumExp, p.QkvFull, rows, seq, c, config.Heads);
            GatherRows.Launch(device, s.Attention, p.AttentionFull, shared.SharedToFull, n, c);
            Linear(s.Middle, s.Input, s.Attention, w.AttentionProjectionWeight, w.AttentionProjectionBias, n, c, c);
            LayerNormForward.Launch(device, p.Norm, s.Mean2, s.Rstd2, s.Middle, w.Norm2Weight, w.Norm2Bias, n, c, eps);
            Linear(s.Hidden, default, p.Norm, w.FcWeight, w.FcBias, n, c, inner);
            GeluForward.Launch(device, p.Wide.Slice(0, (long)n * inner), s.Hidden.Slice(0, (long)n * inner));
            var next = l + 1 < config.Layers ? p.Layers[l + 1].Input : p.Final;
            Linear(next, s.Middle, p.Wide, w.FcProjectionWeight, w.FcProjectionBias, n, inner, c);
        }
        LayerNormForward.Launch(device, p.FinalNorm, p.FinalMean, p.FinalRstd, p.Final, weights.FinalNormWeight, weights.FinalNormBias, n, c, eps);
        // d(target hidden) of every target, [targets, c]: GradientQkvFull is free until the reverse pass reaches attention.
        return languageModelHead
            ? p.Head.Run(inputs, p.FinalNorm, weights.TokenEmbedding, n, p.Gradient, p.GradientQkvFull, lossGradientWeight, withGradient, countGreedyMatches)
            : 0f;
    }

    private void RunBackward(bool accumulate)
    {
        var p = plan!;
        var shared = p.Inputs.SharedRows;
        int rows = lastRows, seq = lastSequence, full = rows * seq, n = lastShared, c = config.Embedding, inner = config.Inner;
        var dResidual = p.GradientNext.Slice(0, (long)n * c);
        device.Zero(dResidual);
        LayerNormBackward.Launch(device, dResidual, p.Gradient, p.Final, weights.FinalNormWeight, p.FinalMean, p.FinalRstd, n, c);
        device.Zero(p.Projection.Slice((long)n * c, c));  // the zero row FullToSharedOrZero points repeated prompt positions at
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            var s = p.Layers[l];
            var w = weights.Layers[l];
            var dWide = p.GradientWide.Slice(0, (long)n * inner);
            InputGradient(dWide, dResidual, w.FcProjectionWeight, n, inner, c);
            GeluBackward.Launch(device, dWide, dWide, s.Hidden.Slice(0, (long)n * inner));
            InputGradient(p.Norm, dWide, w.FcWeight, n, c, inner);
            LayerNormBackward.Launch(device, dResidual, p.Norm, s.Middle, w.Norm2Weight, s.Mean2, s.Rstd2, n, c);
            InputGradient(p.Projection, dResidual, w.AttentionProjectionWeight, n, c, c);
            // Attention's backward on the full layout: a shared prompt position's output gradient enters once (from the
            // first row using it); every row's key/value gradients at its prompt positions then add up on the shared row.
            GatherRows.Launch(device, p.GradientAttentionFull, p.Projection, shared.FullToSharedOrZero, full, c);
            GatherRows.Launch(device, p.QkvFull, s.Qkv, shared.FullToShared, full, 3 * c);
            GatherRows.Launch(device, p.AttentionFull, s.Attention, shared.FullToShared, full, c);
            FusedQkvAttention.Backward(device, p.GradientQkvFull, p.GradientAttentionFull, p.QkvFull, p.AttentionFull, s.LogSumExp, p.AttentionScratch, rows, seq, c, config.Heads);
            GatherSumRows.Launch(device, p.GradientQkv, p.GradientQkvFull, shared.ReduceStarts, shared.ReduceIndex, n, 3 * c, accumulate: false);
            InputGradient(p.Norm, p.GradientQkv, w.QkvWeight, n, c, 3 * c);
            LayerNormBackward.Launch(device, dResidual, p.Norm, s.Input, w.Norm1Weight, s.Mean1, s.Rstd1, n, c);
        }
        // The shared prompt rows are the prompts' own embedding rows: their gradient is dPrompt (0 for prompts the batch does not use).
        GatherSumRows.Launch(device, state.Gradient, dResidual, shared.PromptStarts, shared.PromptIndex, state.Layout!.TotalLength, c, accumulate);
    }

    /// <summary>y [n, out] = residual + bias + x [n, in] · W [in, out]: the bias (and residual) are written first, the GEMM accumulates.</summary>
    private void Linear(DeviceSpan<float> y, DeviceSpan<float> residual, DeviceSpan<float> x, DeviceSpan<float> weight, DeviceSpan<float> bias, int n, int inDim, int outDim)
    {
        BiasResidual.Launch(device, y.Slice(0, (long)n * outDim), residual.Length == 0 ? default : residual.Slice(0, (long)n * outDim), bias, n, outDim);
        device.Gemm(n, outDim, inDim, 1f, new GemmOperand(x, inDim), new GemmOperand(weight, outDim), 1f, new GemmOperand(y, outDim));
    }

    /// <summary>dx [n, in] = dy [n, out] · Wᵀ — the only GEMM a frozen layer needs backward.</summary>
    private void InputGradient(DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> weight, int n, int inDim, int outDim)
        => device.Gemm(n, inDim, outDim, 1f, new GemmOperand(dy, outDim), new GemmOperand(weight, outDim, Transposed: true), 0f, new GemmOperand(dx, inDim));
}

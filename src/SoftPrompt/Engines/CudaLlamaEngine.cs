using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// The Llama-style fast path: <see cref="CpuLlamaEngine{T}"/>'s forward and input-gradient-only reverse pass as kernels
/// plus GEMMs, on any <see cref="IComputeDevice"/> (a real GPU, or the kernel emulator). RoPE folds attention's 1/√hd into
/// the query's rotation; grouped-query attention repeats each kv head for its query heads and sums the group's
/// gradients back (deterministic, no atomics) around the biased-attention kernel run without a bias. Weights and RoPE
/// tables are uploaded once; activations live in one plan per (rows, positions) capacity; a step waits only to read the loss.
/// Each prompt's positions are computed once per batch (<see cref="SharedPromptRows"/>): norms, GEMMs and SwiGLU run on
/// the shared rows; RoPE and attention on each row's full sequence gathered from them (RoPE is applied in the full
/// layout, where a position's angle is its index).
/// </summary>
public sealed class CudaLlamaEngine : IDeviceEngine
{
    private float lossGradientWeight = 1f;
    private readonly IComputeDevice device;
    private readonly bool ownsDevice;
    private readonly LlamaConfig config;
    private readonly LlamaDeviceWeights weights;
    private readonly DevicePromptState state;
    private readonly float attentionScale;
    private LlamaDevicePlan? plan;
    private int lastRows, lastSequence, lastShared;

    public CudaLlamaEngine(IComputeDevice device, LlamaWeights<float> hostWeights, bool ownsDevice = false)
    {
        this.device = device;
        this.ownsDevice = ownsDevice;
        config = hostWeights.Config;
        weights = new LlamaDeviceWeights(device, hostWeights);
        state = new DevicePromptState(device, config.Embedding);
        attentionScale = 1f / MathF.Sqrt(config.HeadSize);
    }

    public string DeviceName => device.Kind;
    public IComputeDevice Device => device;
    public int EmbeddingSize => config.Embedding;
    public int VocabSize => config.VocabSize;
    public int MaxPositions => config.SequenceLimit;
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

    /// <summary>Full logits [B, T, V] at every position (tests; training never materialises these).</summary>
    public void Logits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        int n = batch.Rows * batch.SequenceLength, d = config.Embedding, vocab = config.VocabSize;
        if (logits.Length < (long)n * vocab) throw new ArgumentException($"Logits buffer needs {(long)n * vocab} values.");
        using var all = device.Allocate<float>((long)n * vocab);
        GatherRows.Launch(device, plan!.FullScratch, plan.FinalNorm, plan.Inputs.SharedRows.FullToShared, n, d);
        device.Gemm(n, vocab, d, 1f, new GemmOperand(plan.FullScratch, d), new GemmOperand(weights.HeadWeight, d, Transposed: true), 0f, new GemmOperand(all.Span, vocab));
        device.CopyToHost(all.Span, logits[..(n * vocab)]);
    }

    public void NextTokenLogits(TokenBatch batch, Span<float> logits)
    {
        int vocab = config.VocabSize, d = config.Embedding;
        if (logits.Length < (long)batch.Rows * vocab) throw new ArgumentException($"Logits buffer holds {logits.Length} values, {batch.Rows} rows × {vocab} need {(long)batch.Rows * vocab}.");
        RunForward(batch, withGradient: false, languageModelHead: false);
        plan!.Head.NextTokenLogits(batch, plan.Inputs, plan.FinalNorm, weights.HeadWeight, logits);
    }

    public void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, languageModelHead: false);
        plan!.Head.NextTokenLogits(batch, plan.Inputs, plan.FinalNorm, weights.HeadWeight, default, tokens);
    }

    public void Dispose()
    {
        plan?.Dispose();
        state.Dispose();
        weights.Dispose();
        if (ownsDevice) device.Dispose();
    }

    private LlamaDevicePlan Plan(TokenBatch batch)
    {
        var p = plan;
        var layout = state.Layout!;
        int rows = Math.Max(batch.Rows, batch.RowCapacity), sequence = batch.SequenceLength;
        int positions = Math.Max(batch.Rows * sequence, batch.RowCapacity * Math.Min(config.SequenceLimit, batch.LongestPrompt + batch.TokenCapacity));
        if (p is null || p.Rows < rows || p.Positions < batch.Rows * sequence || p.Sequence < sequence || !p.Layout.Equals(layout))
        {
            // Grow every dimension to the largest seen, so alternating batch shapes settle on one plan.
            int r = Math.Max(rows, p?.Rows ?? 0), n = Math.Max(positions, p?.Positions ?? 0);
            int s = Math.Max(Math.Min(config.SequenceLimit, batch.LongestPrompt + batch.TokenCapacity), Math.Max(sequence, p?.Sequence ?? 0));
            p?.Dispose();
            plan = p = new LlamaDevicePlan(device, config, r, n, s, layout);
        }
        return p;
    }

    private float RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches = false, bool languageModelHead = true)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, config.VocabSize, config.SequenceLimit, requireTargets: languageModelHead);
        var p = Plan(batch);
        int rows = batch.Rows, seq = batch.SequenceLength, full = rows * seq, d = config.Embedding;
        int att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        float eps = (float)config.RmsNormEpsilon;
        var inputs = p.Inputs;
        inputs.Upload(batch);
        var shared = inputs.SharedRows;
        int n = shared.Shared;
        lastRows = rows;
        lastSequence = seq;
        lastShared = n;

        var first = config.Layers > 0 ? p.Layers[0].Input : p.Final;
        EmbeddingForward.Launch(device, p.FullScratch.Slice(0, (long)full * d), inputs.Tokens.Slice(0, rows * batch.TokenLength), state.Prompts, inputs.PromptIndex.Slice(0, rows),
            state.Offsets, weights.TokenEmbedding, p.ZeroPositions, rows, seq, batch.TokenLength, d);
        GatherRows.Launch(device, first, p.FullScratch, shared.SharedToFull, n, d);
        for (int l = 0; l < config.Layers; l++)
        {
            var s = p.Layers[l];
            var w = weights.Layers[l];
            RmsNormForward.Launch(device, p.Norm, s.Rstd1, s.Input, w.AttentionNormWeight, n, d, eps);
            Project(s.Query, p.Norm, w.Query, n, d, att);
            Project(s.Key, p.Norm, w.Key, n, d, kv);
            Project(s.Value, p.Norm, w.Value, n, d, kv);
            FullAttentionInputs(p, s, rows, seq);
            // scale 1: FullAttentionInputs folded 1/√hd into q with RoPE (as the CPU engine does).
            AttentionForward.Launch(device, p.AttentionFull, att, s.LogSumExp, p.QueryFull, att, p.KeyFull, att, p.ValueFull, att,
                default, default, default, rows, seq, seq, config.Heads, config.HeadSize, causal: true, scale: 1f);
            GatherRows.Launch(device, s.Attention, p.AttentionFull, shared.SharedToFull, n, att);
            Residual(s.Middle, s.Input, s.Attention, w.Output, n, att, d);
            RmsNormForward.Launch(device, p.Norm, s.Rstd2, s.Middle, w.MlpNormWeight, n, d, eps);
            Project(s.Gate, p.Norm, w.Gate, n, d, ff);
            Project(s.Up, p.Norm, w.Up, n, d, ff);
            SwiGluForward.Launch(device, p.Wide, s.Gate, s.Up, n * ff);
            var next = l + 1 < config.Layers ? p.Layers[l + 1].Input : p.Final;
            Residual(next, s.Middle, p.Wide, w.Down, n, ff, d);
        }
        RmsNormForward.Launch(device, p.FinalNorm, p.FinalRstd, p.Final, weights.FinalNormWeight, n, d, eps);
        // d(target hidden) of every target goes to FullScratch ([targets, d]; the embeddings there are no longer needed).
        return languageModelHead
            ? p.Head.Run(inputs, p.FinalNorm, weights.HeadWeight, n, p.Gradient, p.FullScratch, lossGradientWeight, withGradient, countGreedyMatches)
            : 0f;
    }

    /// <summary>
    /// Attention's inputs in the full layout, from a layer's shared-row projections: q rotated and scaled by 1/√hd, k rotated
    /// (position = index in the row's sequence, the prompt counting), k and v repeated to every query head. The forward
    /// computes them, and the reverse pass again (cheaper than keeping them per layer).
    /// </summary>
    private void FullAttentionInputs(LlamaDevicePlan p, LlamaDevicePlan.Layer s, int rows, int seq)
    {
        int full = rows * seq, heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize;
        var shared = p.Inputs.SharedRows;
        GatherRows.Launch(device, p.QueryFull, s.Query, shared.FullToShared, full, att);
        RopeForward.Launch(device, p.QueryFull, weights.RopeCos, weights.RopeSin, rows, seq, heads, hd, attentionScale);
        GatherRows.Launch(device, p.KeyNarrowFull, s.Key, shared.FullToShared, full, kv);
        RopeForward.Launch(device, p.KeyNarrowFull, weights.RopeCos, weights.RopeSin, rows, seq, kvHeads, hd, 1f);
        RepeatKeyValueHeads.Launch(device, p.KeyFull, p.KeyNarrowFull, full, heads, kvHeads, hd);
        GatherRows.Launch(device, p.ValueNarrowFull, s.Value, shared.FullToShared, full, kv);
        RepeatKeyValueHeads.Launch(device, p.ValueFull, p.ValueNarrowFull, full, heads, kvHeads, hd);
    }

    private void RunBackward(bool accumulate)
    {
        var p = plan!;
        var shared = p.Inputs.SharedRows;
        int rows = lastRows, seq = lastSequence, full = rows * seq, n = lastShared, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        var dResidual = p.GradientNext.Slice(0, (long)n * d);
        device.Zero(dResidual);
        RmsNormBackward.Launch(device, dResidual, p.Gradient, p.Final, weights.FinalNormWeight, p.FinalRstd, n, d);
        device.Zero(p.GradientAttention.Slice((long)n * att, att));  // the zero row FullToSharedOrZero points repeated prompt positions at
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            var s = p.Layers[l];
            var w = weights.Layers[l];
            InputGradient(p.Wide, dResidual, w.Down, n, ff, d);
            SwiGluBackward.Launch(device, p.GradientGate, p.GradientUp, p.Wide, s.Gate, s.Up, n * ff);
            InputGradient(p.Norm, p.GradientGate, w.Gate, n, d, ff);
            InputGradient(p.Norm, p.GradientUp, w.Up, n, d, ff, accumulate: true);
            RmsNormBackward.Launch(device, dResidual, p.Norm, s.Middle, w.MlpNormWeight, s.Rstd2, n, d);

            // Attention's backward on the full layout: a shared prompt position's output gradient enters once (from the first
            // row using it); every row's gradients at its prompt positions then add up on the shared row.
            InputGradient(p.GradientAttention, dResidual, w.Output, n, att, d);
            GatherRows.Launch(device, p.GradientAttentionFull, p.GradientAttention, shared.FullToSharedOrZero, full, att);
            FullAttentionInputs(p, s, rows, seq);
            GatherRows.Launch(device, p.AttentionFull, s.Attention, shared.FullToShared, full, att);
            AttentionBackward.Launch(device, p.GradientQueryFull, att, p.GradientKeyFull, att, p.GradientValueFull, att, p.GradientAttentionFull, att,
                p.QueryFull, att, p.KeyFull, att, p.ValueFull, att, p.AttentionFull, att, s.LogSumExp, p.AttentionScratch, default, default, default,
                rows, seq, seq, heads, hd, causal: true, scale: 1f);
            SumKeyValueGroups.Launch(device, p.KeyNarrowFull, p.GradientKeyFull, full, heads, kvHeads, hd);
            SumKeyValueGroups.Launch(device, p.ValueNarrowFull, p.GradientValueFull, full, heads, kvHeads, hd);
            RopeBackward.Launch(device, p.GradientQueryFull, weights.RopeCos, weights.RopeSin, rows, seq, heads, hd, attentionScale);
            RopeBackward.Launch(device, p.KeyNarrowFull, weights.RopeCos, weights.RopeSin, rows, seq, kvHeads, hd, 1f);
            GatherSumRows.Launch(device, p.GradientQuery, p.GradientQueryFull, shared.ReduceStarts, shared.ReduceIndex, n, att, accumulate: false);
            GatherSumRows.Launch(device, p.KeyNarrow, p.KeyNarrowFull, shared.ReduceStarts, shared.ReduceIndex, n, kv, accumulate: false);
            GatherSumRows.Launch(device, p.ValueNarrow, p.ValueNarrowFull, shared.ReduceStarts, shared.ReduceIndex, n, kv, accumulate: false);
            InputGradient(p.Norm, p.GradientQuery, w.Query, n, d, att);
            InputGradient(p.Norm, p.KeyNarrow, w.Key, n, d, kv, accumulate: true);
            InputGradient(p.Norm, p.ValueNarrow, w.Value, n, d, kv, accumulate: true);
            RmsNormBackward.Launch(device, dResidual, p.Norm, s.Input, w.AttentionNormWeight, s.Rstd1, n, d);
        }
        // The shared prompt rows are the prompts' own embedding rows: their gradient is dPrompt (0 for prompts the batch does not use).
        GatherSumRows.Launch(device, state.Gradient, dResidual, shared.PromptStarts, shared.PromptIndex, state.Layout!.TotalLength, d, accumulate);
    }

    /// <summary>y [n, outDim] = x [n, inDim] · Wᵀ, W [outDim, inDim] (nn.Linear, no bias).</summary>
    private void Project(DeviceSpan<float> y, DeviceSpan<float> x, DeviceSpan<float> weight, int n, int inDim, int outDim)
        => device.Gemm(n, outDim, inDim, 1f, new GemmOperand(x, inDim), new GemmOperand(weight, inDim, Transposed: true), 0f, new GemmOperand(y, outDim));

    /// <summary>y [n, outDim] = residual + x · Wᵀ: the residual is copied in first, the GEMM accumulates onto it.</summary>
    private void Residual(DeviceSpan<float> y, DeviceSpan<float> residual, DeviceSpan<float> x, DeviceSpan<float> weight, int n, int inDim, int outDim)
    {
        device.CopyDeviceToDevice(residual.Slice(0, (long)n * outDim), y.Slice(0, (long)n * outDim));
        device.Gemm(n, outDim, inDim, 1f, new GemmOperand(x, inDim), new GemmOperand(weight, inDim, Transposed: true), 1f, new GemmOperand(y, outDim));
    }

    /// <summary>dx [n, inDim] (=, or += when accumulating) dy [n, outDim] · W, W [outDim, inDim]. The only GEMM a frozen layer needs backward.</summary>
    private void InputGradient(DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> weight, int n, int inDim, int outDim, bool accumulate = false)
        => device.Gemm(n, inDim, outDim, 1f, new GemmOperand(dy, outDim), new GemmOperand(weight, inDim), accumulate ? 1f : 0f, new GemmOperand(dx, inDim));
}

using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// The reference engine for Llama-style decoders (RMSNorm, rotate-half RoPE, SwiGLU, grouped-query attention): plain
/// C# over the CPU ops, fp32 for use and fp64 for gradient checks. Prompt tuning as PEFT does it for decoder-only
/// models: the prompt vectors precede the tokens and take RoPE positions 0..P−1. The reverse pass computes input
/// gradients only, and the LM head runs only at target positions.
/// </summary>
public sealed class CpuLlamaEngine<T> : IPromptEngine where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private T lossGradientWeight = T.One;
    private readonly LlamaWeights<T> weights;
    private readonly LlamaConfig config;
    private readonly CpuPromptState<T> state;
    private readonly T[] cos, sin;
    private readonly T attentionScale;
    private LlamaCpuActivations<T>? activations;
    private int lastBatchRows, lastSequence;

    public CpuLlamaEngine(LlamaWeights<T> weights)
    {
        this.weights = weights;
        config = weights.Config;
        state = new CpuPromptState<T>(config.Embedding);
        (cos, sin) = LlamaRope.Tables<T>(config.InverseFrequencies<T>(), config.SequenceLimit);
        attentionScale = T.One / T.Sqrt(T.CreateChecked(config.HeadSize));
    }

    public string DeviceName => "cpu";
    public int EmbeddingSize => config.Embedding;
    public int VocabSize => config.VocabSize;
    public int MaxPositions => config.SequenceLimit;
    public int PromptCount => state.PromptCount;
    public PromptLayout? PromptLayout => state.Layout;

    /// <summary>The prompts [ΣP_k, d] packed as <see cref="PromptLayout"/> says, editable in place.</summary>
    public Span<T> Prompts => state.Prompts;
    /// <summary>dLoss/dPrompts from the last backward pass [ΣP_k, d].</summary>
    public ReadOnlySpan<T> PromptGradient => state.Gradient;

    public void LoadPrompts(ReadOnlySpan<T> values, PromptLayout layout) => state.Load(values, layout);
    public void LoadPrompts(ReadOnlySpan<T> values, int promptCount, int promptLength) => state.Load(values, Engines.PromptLayout.Uniform(promptCount, promptLength));
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

    public float Forward(TokenBatch batch) => float.CreateTruncating(Loss(batch));
    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f) =>
        float.CreateTruncating(LossAndGradient(batch, accumulate, T.CreateChecked(gradientWeight)));

    /// <summary>Mean cross-entropy over the batch's targets.</summary>
    public T Loss(TokenBatch batch) => RunForward(batch, withGradient: false);

    /// <summary>Mean cross-entropy, and dLoss/dPrompts (times <paramref name="gradientWeight"/>) into <see cref="PromptGradient"/>, added to it when accumulating.</summary>
    public T LossAndGradient(TokenBatch batch, bool accumulate, T gradientWeight)
    {
        lossGradientWeight = gradientWeight;
        T loss = RunForward(batch, withGradient: true);
        RunBackward(batch, accumulate);
        return loss;
    }

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        if (rowLogLikelihood.Length < batch.Rows) throw new ArgumentException($"Score buffer holds {rowLogLikelihood.Length} rows, the batch has {batch.Rows}.");
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches && rowGreedyMatches.Length < batch.Rows) throw new ArgumentException($"Match buffer holds {rowGreedyMatches.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, countGreedyMatches: matches);
        activations!.Head.ScoreRows(batch.Rows, rowLogLikelihood, rowGreedyMatches);
    }

    /// <summary>Full logits [B, T, V] for every position (tests; training never materialises these).</summary>
    public void Logits(TokenBatch batch, Span<T> logits)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        int n = batch.Rows * batch.SequenceLength;
        if (logits.Length < (long)n * config.VocabSize) throw new ArgumentException($"Logits buffer needs {(long)n * config.VocabSize} values.");
        CpuGemm.Gemm(false, true, n, config.VocabSize, config.Embedding, T.One, activations!.FinalNorm, config.Embedding,
            weights.HeadWeight, config.Embedding, T.Zero, logits, config.VocabSize);
    }

    public void NextTokenLogits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        activations!.Head.NextTokenLogits(batch, activations.FinalNorm, weights.HeadWeight, logits);
    }

    public void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        activations!.Head.NextTokens(batch, activations.FinalNorm, weights.HeadWeight, tokens);
    }

    public void Dispose() => activations = null;

    private LlamaCpuActivations<T> Plan(TokenBatch batch)
    {
        int n = batch.Rows * batch.SequenceLength;
        if (activations is null || activations.Rows * activations.Sequence < n || activations.Sequence < batch.SequenceLength)
        {
            activations = new LlamaCpuActivations<T>(config, batch.Rows, Math.Max(batch.SequenceLength, activations?.Sequence ?? 0));
        }
        return activations;
    }

    private T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches = false, bool languageModelHead = true)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, config.VocabSize, config.SequenceLimit, requireTargets: languageModelHead);
        var a = Plan(batch);
        int rows = batch.Rows, seq = batch.SequenceLength, n = rows * seq, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        lastBatchRows = rows;
        lastSequence = seq;
        T eps = T.CreateChecked(config.RmsNormEpsilon);

        var first = config.Layers > 0 ? a.Layers[0].Input : a.Final;
        EmbeddingOps.Forward<T>(first, batch.Tokens.AsSpan(0, rows * batch.TokenLength), state.Prompts, batch.PromptIndex, state.Layout!.Offsets,
            weights.TokenEmbedding, a.NoPositions, rows, seq, batch.TokenLength, d);

        for (int l = 0; l < config.Layers; l++)
        {
            var s = a.Layers[l];
            var w = weights.Layers[l];
            RmsNormOps.Forward<T>(a.Norm, s.Rstd1, s.Input, w.AttentionNormWeight, n, d, eps);
            Project(s.Query, a.Norm, w.Query, n, d, att);
            Project(a.KeyNarrow, a.Norm, w.Key, n, d, kv);
            Project(a.ValueNarrow, a.Norm, w.Value, n, d, kv);
            RopeOps.Forward<T>(s.Query, cos, sin, rows, seq, heads, hd);
            RopeOps.Forward<T>(a.KeyNarrow, cos, sin, rows, seq, kvHeads, hd);
            TensorPrimitives.Multiply(s.Query.AsSpan(0, n * att), attentionScale, s.Query.AsSpan(0, n * att));
            GroupedQueryOps.Repeat<T>(s.Key, a.KeyNarrow, n, heads, kvHeads, hd);
            GroupedQueryOps.Repeat<T>(s.Value, a.ValueNarrow, n, heads, kvHeads, hd);
            BiasedAttentionOps.Forward<T>(s.Attention, s.LogSumExp, s.Query, s.Key, s.Value, default, default, rows, seq, seq, heads, hd, causal: true, scale: T.One);
            Project(a.Projection, s.Attention, w.Output, n, att, d);
            TensorPrimitives.Add(s.Input.AsSpan(0, n * d), a.Projection.AsSpan(0, n * d), s.Middle.AsSpan(0, n * d));
            RmsNormOps.Forward<T>(a.Norm, s.Rstd2, s.Middle, w.MlpNormWeight, n, d, eps);
            Project(s.Gate, a.Norm, w.Gate, n, d, ff);
            Project(s.Up, a.Norm, w.Up, n, d, ff);
            SwiGluOps.Forward<T>(a.Wide.AsSpan(0, n * ff), s.Gate.AsSpan(0, n * ff), s.Up.AsSpan(0, n * ff));
            Project(a.Projection, a.Wide, w.Down, n, ff, d);
            var next = l + 1 < config.Layers ? a.Layers[l + 1].Input : a.Final;
            TensorPrimitives.Add(s.Middle.AsSpan(0, n * d), a.Projection.AsSpan(0, n * d), next.AsSpan(0, n * d));
        }
        RmsNormOps.Forward<T>(a.FinalNorm, a.FinalRstd, a.Final, weights.FinalNormWeight, n, d, eps);
        return languageModelHead ? LanguageModelHead(batch, a, withGradient, countGreedyMatches) : T.Zero;
    }

    /// <summary>Logits, loss and (optionally) d(final norm output) at target positions only, in chunks of rows.</summary>
    private T LanguageModelHead(TokenBatch batch, LlamaCpuActivations<T> a, bool withGradient, bool countGreedyMatches)
    {
        int seq = batch.SequenceLength, n = batch.Rows * seq, d = config.Embedding;
        var head = a.Head;
        head.Clear();
        for (int pos = 0; pos < n; pos++)
            if (batch.Targets[pos] != TokenBatch.Ignore) head.Add(pos, batch.Targets[pos], pos / seq);
        return head.Run(a.FinalNorm, weights.HeadWeight, T.One, withGradient ? a.Gradient.AsSpan(0, n * d) : default, lossGradientWeight, countGreedyMatches);
    }

    private void RunBackward(TokenBatch batch, bool accumulate)
    {
        var a = activations!;
        int rows = lastBatchRows, seq = lastSequence, n = rows * seq, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        var dResidual = a.GradientNext;
        dResidual.AsSpan(0, n * d).Clear();
        RmsNormOps.Backward<T>(dResidual, a.Gradient, a.Final, weights.FinalNormWeight, a.FinalRstd, n, d);
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            var s = a.Layers[l];
            var w = weights.Layers[l];
            InputGradient(a.Wide, dResidual, w.Down, n, ff, d, accumulate: false);
            SwiGluOps.Backward<T>(a.GradientGate.AsSpan(0, n * ff), a.GradientUp.AsSpan(0, n * ff), a.Wide.AsSpan(0, n * ff), s.Gate.AsSpan(0, n * ff), s.Up.AsSpan(0, n * ff));
            InputGradient(a.Norm, a.GradientGate, w.Gate, n, d, ff, accumulate: false);
            InputGradient(a.Norm, a.GradientUp, w.Up, n, d, ff, accumulate: true);
            RmsNormOps.Backward<T>(dResidual, a.Norm, s.Middle, w.MlpNormWeight, s.Rstd2, n, d);

            InputGradient(a.GradientAttention, dResidual, w.Output, n, att, d, accumulate: false);
            BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, s.Query, s.Key, s.Value, s.Attention, s.LogSumExp,
                default, default, rows, seq, seq, heads, hd, causal: true, scale: T.One);
            TensorPrimitives.Multiply(a.GradientQuery.AsSpan(0, n * att), attentionScale, a.GradientQuery.AsSpan(0, n * att));
            GroupedQueryOps.Sum<T>(a.KeyNarrow, a.GradientKey, n, heads, kvHeads, hd);
            GroupedQueryOps.Sum<T>(a.ValueNarrow, a.GradientValue, n, heads, kvHeads, hd);
            RopeOps.Backward<T>(a.GradientQuery, cos, sin, rows, seq, heads, hd);
            RopeOps.Backward<T>(a.KeyNarrow, cos, sin, rows, seq, kvHeads, hd);
            InputGradient(a.Norm, a.GradientQuery, w.Query, n, d, att, accumulate: false);
            InputGradient(a.Norm, a.KeyNarrow, w.Key, n, d, kv, accumulate: true);
            InputGradient(a.Norm, a.ValueNarrow, w.Value, n, d, kv, accumulate: true);
            RmsNormOps.Backward<T>(dResidual, a.Norm, s.Input, w.AttentionNormWeight, s.Rstd1, n, d);
        }
        EmbeddingOps.PromptGradient<T>(state.Gradient, dResidual, batch.PromptIndex, state.Layout!.Offsets, rows, seq, d, accumulate);
    }

    /// <summary>y [n, outDim] = x [n, inDim] · Wᵀ, W [outDim, inDim] (nn.Linear, no bias).</summary>
    private static void Project(Span<T> y, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, int n, int inDim, int outDim)
        => CpuGemm.Gemm(false, true, n, outDim, inDim, T.One, x, inDim, weight, inDim, T.Zero, y, outDim);

    /// <summary>dx [n, inDim] (= or +=) dy [n, outDim] · W, W [outDim, inDim]. The only GEMM a frozen layer needs backward.</summary>
    private static void InputGradient(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> weight, int n, int inDim, int outDim, bool accumulate)
        => CpuGemm.Gemm(false, false, n, inDim, outDim, T.One, dy, outDim, weight, inDim, accumulate ? T.One : T.Zero, dx, inDim);
}

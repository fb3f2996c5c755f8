using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// The reference GPT-2 prompt-tuning engine: plain C# over the CPU ops, fp32 for use and fp64 for
/// gradient checks. The reverse pass computes input gradients only — no weight gradient exists — and
/// the LM head runs only at target positions.
/// </summary>
public sealed class CpuGpt2Engine<T> : IPromptEngine where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>Multiplies the next backward pass's gradient (see IPromptEngine.ForwardBackward).</summary>
    private T lossGradientWeight = T.One;
    private readonly Gpt2Weights<T> weights;
    private readonly Gpt2Config config;
    private readonly CpuPromptState<T> state;
    private Gpt2CpuActivations<T>? activations;
    private int lastBatchRows, lastSequence;

    public CpuGpt2Engine(Gpt2Weights<T> weights)
    {
        this.weights = weights;
        config = weights.Config;
        state = new CpuPromptState<T>(config.Embedding);
    }

    public string DeviceName => "cpu";
    public int EmbeddingSize => config.Embedding;
    public int VocabSize => config.VocabSize;
    public int MaxPositions => config.MaxPositions;
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
    public int OptimizerStateLength => state.OptimizerStateLength;
    public void ReadOptimizerState(Span<float> destination) => state.ReadOptimizerState(destination);
    public void LoadOptimizerState(ReadOnlySpan<float> source) => state.LoadOptimizerState(source);
    public void ReadPromptGradient(Span<float> destination) => state.ReadGradient(destination);

    public float Forward(TokenBatch batch) => float.CreateTruncating(Loss(batch));
    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f) => float.CreateTruncating(LossAndGradient(batch, accumulate, T.CreateChecked(gradientWeight)));

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        if (rowLogLikelihood.Length < batch.Rows) throw new ArgumentException($"Score buffer holds {rowLogLikelihood.Length} rows, the batch has {batch.Rows}.");
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches && rowGreedyMatches.Length < batch.Rows) throw new ArgumentException($"Match buffer holds {rowGreedyMatches.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, countGreedyMatches: matches);
        activations!.Head.ScoreRows(batch.Rows, rowLogLikelihood, rowGreedyMatches);
    }

    /// <summary>Mean cross-entropy over the batch's targets.</summary>
    public T Loss(TokenBatch batch) => RunForward(batch, withGradient: false);

    /// <summary>Mean cross-entropy, and dLoss/dPrompts into <see cref="PromptGradient"/> (added to it when accumulating).</summary>
    public T LossAndGradient(TokenBatch batch, bool accumulate = false) => LossAndGradient(batch, accumulate, T.One);

    /// <summary>As <see cref="LossAndGradient(TokenBatch, bool)"/>, with the gradient multiplied by <paramref name="gradientWeight"/>.</summary>
    public T LossAndGradient(TokenBatch batch, bool accumulate, T gradientWeight)
    {
        lossGradientWeight = gradientWeight;
        T loss = RunForward(batch, withGradient: true);
        RunBackward(batch, accumulate);
        return loss;
    }

    /// <summary>Full logits [B, T, V] for every position (tests and generation; training never materialises these).</summary>
    public void Logits(TokenBatch batch, Span<T> logits)
    {
        RunForward(batch, withGradient: false);
        int n = batch.Rows * batch.SequenceLength;
        if (logits.Length < (long)n * config.VocabSize) throw new ArgumentException($"Logits buffer needs {(long)n * config.VocabSize} values.");
        CpuGemm.Gemm(false, true, n, config.VocabSize, config.Embedding, T.One, activations!.FinalNorm, config.Embedding,
            weights.Head, config.Embedding, T.Zero, logits, config.VocabSize);
    }

    public float LastGradientNorm => state.LastGradientNorm;
    public void ReadGradientNorms(Span<float> destination) => state.ReadGradientNorms(destination);

    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale = 1f)
        => state.OptimizerStep(settings, step, learningRate, gradientScale);

    public void Dispose() => activations = null;

    public void NextTokenLogits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        activations!.Head.NextTokenLogits(batch, activations.FinalNorm, weights.Head, logits);
    }

    public void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        activations!.Head.NextTokens(batch, activations.FinalNorm, weights.Head, tokens);
    }

    private Gpt2CpuActivations<T> Plan(TokenBatch batch)
    {
        int n = batch.Rows * batch.SequenceLength;
        if (activations is null || activations.Rows * activations.Sequence < n)
        {
            activations = new Gpt2CpuActivations<T>(config, batch.Rows, batch.SequenceLength);
        }
        return activations;
    }

    private T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches = false, bool languageModelHead = true)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, config.VocabSize, config.MaxPositions, requireTargets: languageModelHead);
        var a = Plan(batch);
        int rows = batch.Rows, seq = batch.SequenceLength, n = rows * seq, c = config.Embedding, inner = config.Inner;
        lastBatchRows = rows;
        lastSequence = seq;
        T eps = T.CreateChecked(config.LayerNormEpsilon);

        var first = config.Layers > 0 ? a.Layers[0].Input : a.Final;
        EmbeddingOps.Forward<T>(first, batch.Tokens.AsSpan(0, rows * batch.TokenLength), state.Prompts, batch.PromptIndex, state.Layout!.Offsets,
            weights.TokenEmbedding, weights.PositionEmbedding, rows, seq, batch.TokenLength, c);

        for (int l = 0; l < config.Layers; l++)
        {
            var s = a.Layers[l];
            var w = weights.Layers[l];
            LayerNormOps.Forward<T>(a.Norm, s.Mean1, s.Rstd1, s.Input, w.Norm1Weight, w.Norm1Bias, n, c, eps);
            Linear(s.Qkv, a.Norm, w.QkvWeight, w.QkvBias, n, c, 3 * c);
            AttentionOps.Forward<T>(s.Attention, s.LogSumExp, s.Qkv, rows, seq, c, config.Heads, config.AttentionScale<T>(l));
            Linear(a.Projection, s.Attention, w.AttentionProjectionWeight, w.AttentionProjectionBias, n, c, c);
            TensorPrimitives.Add(s.Input.AsSpan(0, n * c), a.Projection.AsSpan(0, n * c), s.Middle.AsSpan(0, n * c));
            LayerNormOps.Forward<T>(a.Norm, s.Mean2, s.Rstd2, s.Middle, w.Norm2Weight, w.Norm2Bias, n, c, eps);
            Linear(s.Hidden, a.Norm, w.FcWeight, w.FcBias, n, c, inner);
            GeluOps.Forward<T>(a.Wide.AsSpan(0, n * inner), s.Hidden.AsSpan(0, n * inner));
            Linear(a.Projection, a.Wide, w.FcProjectionWeight, w.FcProjectionBias, n, inner, c);
            var next = l + 1 < config.Layers ? a.Layers[l + 1].Input : a.Final;
            TensorPrimitives.Add(s.Middle.AsSpan(0, n * c), a.Projection.AsSpan(0, n * c), next.AsSpan(0, n * c));
        }
        LayerNormOps.Forward<T>(a.FinalNorm, a.FinalMean, a.FinalRstd, a.Final, weights.FinalNormWeight, weights.FinalNormBias, n, c, eps);
        return languageModelHead ? LanguageModelHead(batch, a, withGradient, countGreedyMatches) : T.Zero;
    }

    /// <summary>Logits, loss and (optionally) d(final norm output) at target positions only, in chunks of rows.</summary>
    private T LanguageModelHead(TokenBatch batch, Gpt2CpuActivations<T> a, bool withGradient, bool countGreedyMatches)
    {
        int seq = batch.SequenceLength, n = batch.Rows * seq, d = config.Embedding;
        var head = a.Head;
        head.Clear();
        for (int pos = 0; pos < n; pos++)
            if (batch.Targets[pos] != TokenBatch.Ignore) head.Add(pos, batch.Targets[pos], pos / seq);
        return head.Run(a.FinalNorm, weights.Head, T.One, withGradient ? a.Gradient.AsSpan(0, n * d) : default, lossGradientWeight, countGreedyMatches);
    }

    private void RunBackward(TokenBatch batch, bool accumulate)
    {
        var a = activations!;
        int rows = lastBatchRows, seq = lastSequence, n = rows * seq, c = config.Embedding, inner = config.Inner;
        var dResidual = a.GradientNext;
        dResidual.AsSpan(0, n * c).Clear();
        LayerNormOps.Backward<T>(dResidual, a.Gradient, a.Final, weights.FinalNormWeight, a.FinalMean, a.FinalRstd, n, c);
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            var s = a.Layers[l];
            var w = weights.Layers[l];
            InputGradient(a.GradientWide, dResidual, w.FcProjectionWeight, n, inner, c);
            GeluOps.Backward<T>(a.GradientWide.AsSpan(0, n * inner), a.GradientWide.AsSpan(0, n * inner), s.Hidden.AsSpan(0, n * inner));
            InputGradient(a.Norm, a.GradientWide, w.FcWeight, n, c, inner);
            LayerNormOps.Backward<T>(dResidual, a.Norm, s.Middle, w.Norm2Weight, s.Mean2, s.Rstd2, n, c);
            InputGradient(a.Projection, dResidual, w.AttentionProjectionWeight, n, c, c);
            AttentionOps.Backward<T>(a.GradientQkv, a.Projection, s.Qkv, s.Attention, s.LogSumExp, rows, seq, c, config.Heads, config.AttentionScale<T>(l));
            InputGradient(a.Norm, a.GradientQkv, w.QkvWeight, n, c, 3 * c);
            LayerNormOps.Backward<T>(dResidual, a.Norm, s.Input, w.Norm1Weight, s.Mean1, s.Rstd1, n, c);
        }
        EmbeddingOps.PromptGradient<T>(state.Gradient, dResidual, batch.PromptIndex, state.Layout!.Offsets, rows, seq, c, accumulate);
    }

    /// <summary>y [n, outDim] = x [n, inDim] · W [inDim, outDim] + bias.</summary>
    private static void Linear(Span<T> y, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, int n, int inDim, int outDim)
    {
        for (int r = 0; r < n; r++) bias.CopyTo(y.Slice(r * outDim, outDim));
        CpuGemm.Gemm(false, false, n, outDim, inDim, T.One, x, inDim, weight, outDim, T.One, y, outDim);
    }

    /// <summary>dx [n, inDim] = dy [n, outDim] · Wᵀ, W [inDim, outDim]. The only GEMM a frozen layer needs backward.</summary>
    private static void InputGradient(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> weight, int n, int inDim, int outDim)
        => CpuGemm.Gemm(false, true, n, inDim, outDim, T.One, dy, outDim, weight, outDim, T.Zero, dx, inDim);
}

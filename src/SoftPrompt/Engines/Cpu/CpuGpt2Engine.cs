using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>
/// The reference GPT-2 prompt-tuning engine: plain C# over the CPU ops, fp32 for use and fp64 for gradient checks.
/// Its block: LayerNorm with bias, fused qkv (Conv1D, [in, out] weights with biases), causal attention, tanh-GELU MLP;
/// learned positions added to the embeddings. Everything else is <see cref="CpuDecoderOnlyEngine{T}"/>.
/// </summary>
public sealed class CpuGpt2Engine<T> : CpuDecoderOnlyEngine<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly Gpt2Weights<T> weights;
    private readonly Gpt2Config config;

    public CpuGpt2Engine(Gpt2Weights<T> weights) : base(weights.Config.Embedding, weights.Config.VocabSize, weights.Config.MaxPositions, weights.Config.Layers)
    {
        this.weights = weights;
        config = weights.Config;
    }

    private protected override ReadOnlySpan<T> TokenEmbedding => weights.TokenEmbedding;
    private protected override ReadOnlySpan<T> PositionTable => weights.PositionEmbedding;
    private protected override ReadOnlySpan<T> HeadWeight => weights.Head;

    private protected override DecoderCpuActivations<T> CreateActivations(int capacityRows, int capacitySequence, bool savesLayers) =>
        new Gpt2CpuActivations<T>(config, capacityRows, capacitySequence, savesLayers);

    private protected override long MeasureActivationBytes(int rows, int sequence) => Gpt2DevicePlan.Measure(config, rows, checked(rows * sequence), state.Layout!).Arena.Bytes;

    private Gpt2CpuActivations<T> A => (Gpt2CpuActivations<T>)Activations;

    private protected override void BlockForward(int layer)
    {
        var a = A;
        var s = a.Layers[layer];
        var w = weights.Layers[layer];
        int n = rows * sequence, c = config.Embedding;
        T eps = T.CreateChecked(config.LayerNormEpsilon);
        LayerNormOps.Forward<T>(a.Norm, s.Mean1, s.Rstd1, s.Input, w.Norm1Weight, w.Norm1Bias, n, c, eps);
        Conv1D(s.Qkv, a.Norm, w.QkvWeight, w.QkvBias, n, c, 3 * c);
        AttentionOps.Forward<T>(s.Attention, s.LogSumExp, s.Qkv, rows, sequence, c, config.Heads, config.AttentionScale<T>(layer));
        Conv1D(a.Projection, s.Attention, w.AttentionProjectionWeight, w.AttentionProjectionBias, n, c, c);
        TensorPrimitives.Add(s.Input.AsSpan(0, n * c), a.Projection.AsSpan(0, n * c), s.Middle.AsSpan(0, n * c));
        Mlp(w, s.Middle, s.Mean2, s.Rstd2, a.Norm, s.Hidden, a.Wide, a.Projection, a.BlockInput(layer + 1), n);
    }

    /// <summary>
    /// The block's second half: output = input + c_proj(GELU(c_fc(ln_2(input)))), keeping ln_2's statistics and the
    /// pre-activation <paramref name="hidden"/> (<paramref name="activated"/> may be the same buffer when nothing is kept).
    /// </summary>
    private void Mlp(Gpt2LayerWeights<T> w, T[] input, T[] mean, T[] rstd, T[] norm, T[] hidden, T[] activated, T[] projection, T[] output, int n)
    {
        int c = config.Embedding, inner = config.Inner;
        LayerNormOps.Forward<T>(norm, mean, rstd, input, w.Norm2Weight, w.Norm2Bias, n, c, T.CreateChecked(config.LayerNormEpsilon));
        Conv1D(hidden, norm, w.FcWeight, w.FcBias, n, c, inner);
        GeluOps.Forward<T>(activated.AsSpan(0, n * inner), hidden.AsSpan(0, n * inner));
        Conv1D(projection, activated, w.FcProjectionWeight, w.FcProjectionBias, n, inner, c);
        TensorPrimitives.Add(input.AsSpan(0, n * c), projection.AsSpan(0, n * c), output.AsSpan(0, n * c));
    }

    private protected override void FinalNormForward()
    {
        var a = A;
        LayerNormOps.Forward<T>(a.FinalNorm, a.FinalMean, a.FinalRstd, a.Final, weights.FinalNormWeight, weights.FinalNormBias, rows * sequence, config.Embedding,
            T.CreateChecked(config.LayerNormEpsilon));
    }

    private protected override void FinalNormBackward(T[] dResidual)
    {
        var a = A;
        LayerNormOps.Backward<T>(dResidual, a.Gradient, a.Final, weights.FinalNormWeight, a.FinalMean, a.FinalRstd, rows * sequence, config.Embedding);
    }

    private protected override void BlockBackward(int layer, T[] dResidual)
    {
        var a = A;
        var s = a.Layers[layer];
        var w = weights.Layers[layer];
        int n = rows * sequence, c = config.Embedding, inner = config.Inner;
        Conv1DInputGradient(a.GradientWide, dResidual, w.FcProjectionWeight, n, inner, c);
        GeluOps.Backward<T>(a.GradientWide.AsSpan(0, n * inner), a.GradientWide.AsSpan(0, n * inner), s.Hidden.AsSpan(0, n * inner));
        Conv1DInputGradient(a.Norm, a.GradientWide, w.FcWeight, n, c, inner);
        LayerNormOps.Backward<T>(dResidual, a.Norm, s.Middle, w.Norm2Weight, s.Mean2, s.Rstd2, n, c);
        Conv1DInputGradient(a.Projection, dResidual, w.AttentionProjectionWeight, n, c, c);
        AttentionOps.Backward<T>(a.GradientQkv, a.Projection, s.Qkv, s.Attention, s.LogSumExp, rows, sequence, c, config.Heads, config.AttentionScale<T>(layer));
        Conv1DInputGradient(a.Norm, a.GradientQkv, w.QkvWeight, n, c, 3 * c);
        LayerNormOps.Backward<T>(dResidual, a.Norm, s.Input, w.Norm1Weight, s.Mean1, s.Rstd1, n, c);
    }

    private protected override int KeyValueWidth => config.Embedding;

    private protected override CachedScratch<T> CreateCachedScratch(int capacity) => new Gpt2CachedScratch(capacity, config);

    private sealed class Gpt2CachedScratch(int capacity, Gpt2Config config) : CachedScratch<T>(capacity, config.Embedding, config.Embedding)
    {
        public T[] Qkv { get; } = new T[capacity * 3 * config.Embedding];
        public T[] Hidden { get; } = new T[capacity * config.Inner];
    }

    private protected override void CachedBlock(int layer, CachedScratch<T> scratch, KeyValueCache<T> cache)
    {
        var s = (Gpt2CachedScratch)scratch;
        var w = weights.Layers[layer];
        int n = s.Tokens.Count, c = config.Embedding;
        T eps = T.CreateChecked(config.LayerNormEpsilon);
        LayerNormOps.Forward<T>(s.Norm, s.Mean, s.Rstd, s.Residual, w.Norm1Weight, w.Norm1Bias, n, c, eps);
        Conv1D(s.Qkv, s.Norm, w.QkvWeight, w.QkvBias, n, c, 3 * c);
        CachedAttentionOps.Store<T>(cache.Keys[layer], cache.Values[layer], s.Qkv.AsSpan(c), s.Qkv.AsSpan(2 * c), 3 * c, c, s.Tokens);
        CachedAttentionOps.Forward<T>(s.Attention, s.Qkv, 3 * c, cache.Keys[layer], cache.Values[layer], s.Tokens, config.Heads, config.Heads, config.HeadSize,
            config.AttentionScale<T>(layer));
        Conv1D(s.Projection, s.Attention, w.AttentionProjectionWeight, w.AttentionProjectionBias, n, c, c);
        TensorPrimitives.Add(s.Residual.AsSpan(0, n * c), s.Projection.AsSpan(0, n * c), s.Residual.AsSpan(0, n * c));
        Mlp(w, s.Residual, s.Mean, s.Rstd, s.Norm, s.Hidden, s.Hidden, s.Projection, s.Residual, n);
    }

    private protected override void CachedFinalNorm(Span<T> y, ReadOnlySpan<T> x, int rows, CachedScratch<T> s) =>
        LayerNormOps.Forward<T>(y, s.Mean, s.Rstd, x, weights.FinalNormWeight, weights.FinalNormBias, rows, config.Embedding, T.CreateChecked(config.LayerNormEpsilon));

    /// <summary>y [n, outDim] = x [n, inDim] · W [inDim, outDim] + bias (GPT-2's Conv1D).</summary>
    private static void Conv1D(Span<T> y, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, int n, int inDim, int outDim)
    {
        for (int r = 0; r < n; r++) bias.CopyTo(y.Slice(r * outDim, outDim));
        CpuGemm.Gemm(false, false, n, outDim, inDim, T.One, x, inDim, weight, outDim, T.One, y, outDim);
    }

    /// <summary>dx [n, inDim] = dy [n, outDim] · Wᵀ, W [inDim, outDim]: the only GEMM a frozen Conv1D needs backward.</summary>
    private static void Conv1DInputGradient(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> weight, int n, int inDim, int outDim)
        => CpuGemm.Gemm(false, true, n, inDim, outDim, T.One, dy, outDim, weight, outDim, T.Zero, dx, inDim);
}

using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>
/// The reference engine for Llama-style decoders: plain C# over the CPU ops, fp32 for use and fp64 for gradient checks.
/// Its block: RMSNorm, rotate-half RoPE (the prompt takes positions 0..P−1, as PEFT does), grouped-query attention
/// with k and v widened to every query head, SwiGLU; nn.Linear weights, with biases only where the config puts them on
/// the attention projections (Qwen2's q/k/v, Llama's attention_bias q/k/v/o): a bias shifts the forward pass and leaves
/// every input gradient as it is, so the reverse pass never reads one. Everything else is
/// <see cref="CpuDecoderOnlyEngine{T}"/>.
/// </summary>
public sealed class CpuLlamaEngine<T> : CpuDecoderOnlyEngine<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly LlamaWeights<T> weights;
    private readonly LlamaConfig config;
    private readonly T[] cos, sin;
    private readonly T attentionScale;

    public CpuLlamaEngine(LlamaWeights<T> weights) : base(weights.Config.Embedding, weights.Config.VocabSize, weights.Config.SequenceLimit, weights.Config.Layers)
    {
        this.weights = weights;
        config = weights.Config;
        (cos, sin) = LlamaRope.Tables<T>(config.InverseFrequencies<T>(), config.SequenceLimit);
        attentionScale = T.One / T.Sqrt(T.CreateChecked(config.HeadSize));
    }

    private protected override ReadOnlySpan<T> TokenEmbedding => weights.TokenEmbedding;
    private protected override ReadOnlySpan<T> PositionTable => default;
    private protected override ReadOnlySpan<T> HeadWeight => weights.HeadWeight;

    private protected override DecoderCpuActivations<T> CreateActivations(int capacityRows, int capacitySequence, bool savesLayers) =>
        new LlamaCpuActivations<T>(config, capacityRows, capacitySequence, savesLayers);

    private protected override long MeasureActivationBytes(int rows, int sequence) => LlamaDevicePlan.Measure(config, rows, checked(rows * sequence), sequence, state.Layout!).Arena.Bytes;

    private LlamaCpuActivations<T> A => (LlamaCpuActivations<T>)Activations;

    private protected override void BlockForward(int layer)
    {
        var a = A;
        var s = a.Layers[layer];
        var w = weights.Layers[layer];
        int n = rows * sequence, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize;
        T eps = T.CreateChecked(config.RmsNormEpsilon);
        RmsNormOps.Forward<T>(a.Norm, s.Rstd1, s.Input, w.AttentionNormWeight, n, d, eps);
        Project(s.Query, a.Norm, w.Query, w.QueryBias, n, d, att);
        Project(a.KeyNarrow, a.Norm, w.Key, w.KeyBias, n, d, kv);
        Project(a.ValueNarrow, a.Norm, w.Value, w.ValueBias, n, d, kv);
        RopeOps.Forward<T>(s.Query, cos, sin, rows, sequence, heads, hd);
        RopeOps.Forward<T>(a.KeyNarrow, cos, sin, rows, sequence, kvHeads, hd);
        TensorPrimitives.Multiply(s.Query.AsSpan(0, n * att), attentionScale, s.Query.AsSpan(0, n * att));
        GroupedQueryOps.Repeat<T>(s.Key, a.KeyNarrow, n, heads, kvHeads, hd);
        GroupedQueryOps.Repeat<T>(s.Value, a.ValueNarrow, n, heads, kvHeads, hd);
        BiasedAttentionOps.Forward<T>(s.Attention, s.LogSumExp, s.Query, s.Key, s.Value, default, default, rows, sequence, sequence, heads, hd, causal: true, scale: T.One);
        Project(a.Projection, s.Attention, w.Output, w.OutputBias, n, att, d);
        TensorPrimitives.Add(s.Input.AsSpan(0, n * d), a.Projection.AsSpan(0, n * d), s.Middle.AsSpan(0, n * d));
        Mlp(w, s.Middle, s.Rstd2, a.Norm, s.Gate, s.Up, a.Wide, a.Projection, a.BlockInput(layer + 1), n);
    }

    /// <summary>
    /// The block's second half: output = input + down(SwiGLU(gate(x), up(x))), x = RMSNorm(input), keeping the statistics
    /// and both branches (<paramref name="activated"/> may be the gate buffer when nothing is kept).
    /// </summary>
    private void Mlp(LlamaLayerWeights<T> w, T[] input, T[] rstd, T[] norm, T[] gate, T[] up, T[] activated, T[] projection, T[] output, int n)
    {
        int d = config.Embedding, ff = config.Intermediate;
        RmsNormOps.Forward<T>(norm, rstd, input, w.MlpNormWeight, n, d, T.CreateChecked(config.RmsNormEpsilon));
        Project(gate, norm, w.Gate, n, d, ff);
        Project(up, norm, w.Up, n, d, ff);
        SwiGluOps.Forward<T>(activated.AsSpan(0, n * ff), gate.AsSpan(0, n * ff), up.AsSpan(0, n * ff));
        Project(projection, activated, w.Down, n, ff, d);
        TensorPrimitives.Add(input.AsSpan(0, n * d), projection.AsSpan(0, n * d), output.AsSpan(0, n * d));
    }

    private protected override void FinalNormForward()
    {
        var a = A;
        RmsNormOps.Forward<T>(a.FinalNorm, a.FinalRstd, a.Final, weights.FinalNormWeight, rows * sequence, config.Embedding, T.CreateChecked(config.RmsNormEpsilon));
    }

    private protected override void FinalNormBackward(T[] dResidual)
    {
        var a = A;
        RmsNormOps.Backward<T>(dResidual, a.Gradient, a.Final, weights.FinalNormWeight, a.FinalRstd, rows * sequence, config.Embedding);
    }

    private protected override void BlockBackward(int layer, T[] dResidual)
    {
        var a = A;
        var s = a.Layers[layer];
        var w = weights.Layers[layer];
        int n = rows * sequence, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        InputGradient(a.Wide, dResidual, w.Down, n, ff, d);
        SwiGluOps.Backward<T>(a.GradientGate.AsSpan(0, n * ff), a.GradientUp.AsSpan(0, n * ff), a.Wide.AsSpan(0, n * ff), s.Gate.AsSpan(0, n * ff), s.Up.AsSpan(0, n * ff));
        InputGradient(a.Norm, a.GradientGate, w.Gate, n, d, ff);
        InputGradient(a.Norm, a.GradientUp, w.Up, n, d, ff, accumulate: true);
        RmsNormOps.Backward<T>(dResidual, a.Norm, s.Middle, w.MlpNormWeight, s.Rstd2, n, d);

        InputGradient(a.GradientAttention, dResidual, w.Output, n, att, d);
        BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, s.Query, s.Key, s.Value, s.Attention, s.LogSumExp,
            default, default, rows, sequence, sequence, heads, hd, causal: true, scale: T.One);
        TensorPrimitives.Multiply(a.GradientQuery.AsSpan(0, n * att), attentionScale, a.GradientQuery.AsSpan(0, n * att));
        GroupedQueryOps.Sum<T>(a.KeyNarrow, a.GradientKey, n, heads, kvHeads, hd);
        GroupedQueryOps.Sum<T>(a.ValueNarrow, a.GradientValue, n, heads, kvHeads, hd);
        RopeOps.Backward<T>(a.GradientQuery, cos, sin, rows, sequence, heads, hd);
        RopeOps.Backward<T>(a.KeyNarrow, cos, sin, rows, sequence, kvHeads, hd);
        InputGradient(a.Norm, a.GradientQuery, w.Query, n, d, att);
        InputGradient(a.Norm, a.KeyNarrow, w.Key, n, d, kv, accumulate: true);
        InputGradient(a.Norm, a.ValueNarrow, w.Value, n, d, kv, accumulate: true);
        RmsNormOps.Backward<T>(dResidual, a.Norm, s.Input, w.AttentionNormWeight, s.Rstd1, n, d);
    }

    private protected override int KeyValueWidth => config.KeyValueSize;

    private protected override CachedScratch<T> CreateCachedScratch(int capacity) => new LlamaCachedScratch(capacity, config);

    private sealed class LlamaCachedScratch(int capacity, LlamaConfig config) : CachedScratch<T>(capacity, config.Embedding, config.AttentionSize)
    {
        public T[] Query { get; } = new T[capacity * config.AttentionSize];
        public T[] Key { get; } = new T[capacity * config.KeyValueSize];
        public T[] Value { get; } = new T[capacity * config.KeyValueSize];
        public T[] Gate { get; } = new T[capacity * config.Intermediate];
        public T[] Up { get; } = new T[capacity * config.Intermediate];
    }

    private protected override void CachedBlock(int layer, CachedScratch<T> scratch, KeyValueCache<T> cache)
    {
        var s = (LlamaCachedScratch)scratch;
        var w = weights.Layers[layer];
        int n = s.Tokens.Count, d = config.Embedding;
        int heads = config.Heads, kvHeads = config.KeyValueHeads, hd = config.HeadSize, att = config.AttentionSize, kv = config.KeyValueSize;
        T eps = T.CreateChecked(config.RmsNormEpsilon);
        var positions = s.Tokens.Positions.AsSpan(0, n);
        RmsNormOps.Forward<T>(s.Norm, s.Rstd, s.Residual, w.AttentionNormWeight, n, d, eps);
        Project(s.Query, s.Norm, w.Query, w.QueryBias, n, d, att);
        Project(s.Key, s.Norm, w.Key, w.KeyBias, n, d, kv);
        Project(s.Value, s.Norm, w.Value, w.ValueBias, n, d, kv);
        RopeOps.ForwardAt<T>(s.Query, cos, sin, positions, heads, hd);
        RopeOps.ForwardAt<T>(s.Key, cos, sin, positions, kvHeads, hd);
        TensorPrimitives.Multiply(s.Query.AsSpan(0, n * att), attentionScale, s.Query.AsSpan(0, n * att));
        CachedAttentionOps.Store<T>(cache.Keys[layer], cache.Values[layer], s.Key, s.Value, kv, kv, s.Tokens);
        CachedAttentionOps.Forward<T>(s.Attention, s.Query, att, cache.Keys[layer], cache.Values[layer], s.Tokens, heads, kvHeads, hd, T.One);
        Project(s.Projection, s.Attention, w.Output, w.OutputBias, n, att, d);
        TensorPrimitives.Add(s.Residual.AsSpan(0, n * d), s.Projection.AsSpan(0, n * d), s.Residual.AsSpan(0, n * d));
        Mlp(w, s.Residual, s.Rstd, s.Norm, s.Gate, s.Up, s.Gate, s.Projection, s.Residual, n);
    }

    private protected override void CachedFinalNorm(Span<T> y, ReadOnlySpan<T> x, int rows, CachedScratch<T> s) =>
        RmsNormOps.Forward<T>(y, s.Rstd, x, weights.FinalNormWeight, rows, config.Embedding, T.CreateChecked(config.RmsNormEpsilon));
}

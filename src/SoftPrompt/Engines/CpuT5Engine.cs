using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// The reference T5 prompt-tuning engine (PEFT's seq2seq prompt tuning): plain C# over the CPU ops, fp32 for use
/// and fp64 for gradient checks. A <see cref="TokenBatch"/> row's prompt and input tokens form the encoder input;
/// its target tokens, shifted right behind decoder_start_token_id, are the decoder input (teacher forcing), and
/// decoder position j predicts target j. The reverse pass computes input gradients only: through the decoder,
/// into the encoder output through every cross-attention's k and v, and down the encoder to the prompt rows.
/// </summary>
public sealed class CpuT5Engine<T> : IEncoderDecoderEngine where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>Multiplies the next backward pass's gradient (see IPromptEngine.ForwardBackward).</summary>
    private T lossGradientWeight = T.One;
    private readonly T5Weights<T> weights;
    private readonly T5Config config;
    private readonly CpuPromptState<T> state;
    private T5CpuActivations<T>? activations;
    /// <summary>Shape of the last forward: rows, encoder positions (P + longest input), decoder positions (longest target).</summary>
    private int rows, encoderLength, decoderLength;

    public CpuT5Engine(T5Weights<T> weights)
    {
        this.weights = weights;
        config = weights.Config;
        state = new CpuPromptState<T>(config.Embedding);
    }

    public string DeviceName => "cpu";
    public int EmbeddingSize => config.Embedding;
    public int VocabSize => config.VocabSize;
    /// <summary>T5 has no position table; this bounds each stack's length (config n_positions, else <see cref="T5Config.DefaultMaxPositions"/>).</summary>
    public int MaxPositions => config.MaxPositions;
    public int PromptCount => state.PromptCount;
    public PromptLayout? PromptLayout => state.Layout;

    /// <summary>The prompts [ΣP_k, d] packed as <see cref="PromptLayout"/> says, editable in place.</summary>
    public Span<T> Prompts => state.Prompts;
    /// <summary>dLoss/dPrompts from the last backward pass [ΣP_k, d].</summary>
    public ReadOnlySpan<T> PromptGradient => state.Gradient;
    /// <summary>Decoder positions of the last batch (its longest target): the middle axis of <see cref="Logits"/>.</summary>
    public int DecoderLength => decoderLength;

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
    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f) => float.CreateTruncating(LossAndGradient(batch, accumulate, T.CreateChecked(gradientWeight)));

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

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        if (rowLogLikelihood.Length < batch.Rows) throw new ArgumentException($"Score buffer holds {rowLogLikelihood.Length} rows, the batch has {batch.Rows}.");
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches && rowGreedyMatches.Length < batch.Rows) throw new ArgumentException($"Match buffer holds {rowGreedyMatches.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, countGreedyMatches: matches);
        activations!.Head.ScoreRows(batch.Rows, rowLogLikelihood, rowGreedyMatches);
    }

    /// <summary>
    /// Decoder logits [B, <see cref="DecoderLength"/>, V] at every decoder position (tests and generation; training
    /// never materialises these). Position j of row b predicts target j; positions past a row's targets are padding.
    /// </summary>
    public void Logits(TokenBatch batch, Span<T> logits)
    {
        RunForward(batch, withGradient: false, languageModelHead: false);
        int n = rows * decoderLength;
        if (logits.Length < (long)n * config.VocabSize) throw new ArgumentException($"Logits buffer needs {(long)n * config.VocabSize} values.");
        CpuGemm.Gemm(false, true, n, config.VocabSize, config.Embedding, HeadScale, activations!.DecoderOutput, config.Embedding,
            weights.HeadWeight, config.Embedding, T.Zero, logits, config.VocabSize);
    }

    public void DecoderNextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, languageModelHead: false);
        var a = activations!;
        // Reuses the head's position list: row b's last target sits at decoder position b·Tdec + TargetLengths[b] − 1.
        var positions = a.Head.TargetPositions.AsSpan(0, rows);
        for (int b = 0; b < rows; b++) positions[b] = b * decoderLength + a.TargetLengths[b] - 1;
        a.Head.ArgmaxAt(a.DecoderOutput, weights.HeadWeight, HeadScale, positions, tokens);
        a.Head.Clear();
    }

    public void DecoderLogits(TokenBatch batch, Span<float> logits)
    {
        if (typeof(T) == typeof(float))
        {
            Logits(batch, System.Runtime.InteropServices.MemoryMarshal.Cast<float, T>(logits));
            return;
        }
        // fp64 engines (gradient checks) decode through a temporary: decoding is not a training step.
        var wide = new T[logits.Length];
        Logits(batch, wide);
        for (int i = 0; i < wide.Length; i++) logits[i] = float.CreateTruncating(wide[i]);
    }

    public void Dispose() => activations = null;

    /// <summary>T5 v1.0 (tied) scales the decoder output by d_model^-0.5 before the shared-embedding head; v1.1's own lm_head does not.</summary>
    private T HeadScale => config.RescalesDecoderOutput ? T.One / T.Sqrt(T.CreateChecked(config.Embedding)) : T.One;

    private T5CpuActivations<T> Plan(int batchRows, int encoder, int decoder)
    {
        var a = activations;
        if (a is null || a.Rows < batchRows || a.EncoderLength < encoder || a.DecoderLength < decoder)
        {
            // Grow every dimension to the largest seen so far, so alternating batch shapes settle on one plan.
            int r = Math.Max(batchRows, a?.Rows ?? 0), e = Math.Max(encoder, a?.EncoderLength ?? 0), d = Math.Max(decoder, a?.DecoderLength ?? 0);
            activations = a = new T5CpuActivations<T>(config, r, e, d);
        }
        return a;
    }

    private T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches = false, bool languageModelHead = true)
    {
        var (encoder, decoder) = BatchChecks.EncoderDecoder(batch, state.Layout, config.VocabSize, config.MaxPositions);
        var a = Plan(batch.Rows, encoder, decoder);
        rows = batch.Rows;
        encoderLength = encoder;
        decoderLength = decoder;
        for (int b = 0; b < rows; b++)
        {
            (a.InputLengths[b], a.TargetLengths[b]) = BatchChecks.RowLengths(batch, b);
            a.EncoderLengths[b] = batch.RowPromptLength(b) + a.InputLengths[b];
        }
        EncoderForward(batch, a);
        DecoderForward(batch, a);
        return languageModelHead ? LanguageModelHead(batch, a, withGradient, countGreedyMatches) : T.Zero;
    }

    private void EncoderForward(TokenBatch batch, T5CpuActivations<T> a)
    {
        int ne = rows * encoderLength, d = config.Embedding, att = config.AttentionSize, heads = config.Heads;
        T eps = T.CreateChecked(config.LayerNormEpsilon);
        var x = config.Layers > 0 ? a.Encoder[0].Input : a.EncoderFinal;
        var layout = state.Layout!;
        for (int b = 0; b < rows; b++)
        {
            int promptLength = batch.RowPromptLength(b), promptOffset = layout.Offset(batch.PromptIndex[b]);
            for (int t = 0; t < encoderLength; t++)
            {
                int input = t - promptLength;
                var source = t < promptLength
                    ? state.Prompts.AsSpan((promptOffset + t) * d, d)
                    : TokenRow(input < a.InputLengths[b] ? batch.Tokens[b * batch.TokenLength + input] : config.PadTokenId);
                source.CopyTo(x.AsSpan((b * encoderLength + t) * d, d));
            }
        }
        if (a.EncoderBiasLength != encoderLength)
        {
            RelativePositionOps.Bias<T>(a.EncoderBias, weights.EncoderRelativeBias, heads, encoderLength, encoderLength, bidirectional: true,
                config.RelativeBuckets, config.RelativeMaxDistance);
            a.EncoderBiasLength = encoderLength;
        }
        var bias = a.EncoderBias.AsSpan(0, heads * encoderLength * encoderLength);
        var keys = a.EncoderLengths.AsSpan(0, rows);
        for (int l = 0; l < config.Layers; l++)
        {
            var s = a.Encoder[l];
            var w = weights.EncoderLayers[l];
            var sa = s.SelfAttention;
            RmsNormOps.Forward<T>(a.Norm, s.Rstd1, s.Input, w.SelfAttentionNormWeight, ne, d, eps);
            Project(sa.Query, a.Norm, w.SelfAttention.Query, ne, d, att);
            Project(sa.Key, a.Norm, w.SelfAttention.Key, ne, d, att);
            Project(sa.Value, a.Norm, w.SelfAttention.Value, ne, d, att);
            BiasedAttentionOps.Forward<T>(sa.Output, sa.LogSumExp, sa.Query, sa.Key, sa.Value, bias, keys, rows, encoderLength, encoderLength, heads, config.HeadSize, causal: false, scale: T.One);
            Project(a.Projection, sa.Output, w.SelfAttention.Output, ne, att, d);
            TensorPrimitives.Add(s.Input.AsSpan(0, ne * d), a.Projection.AsSpan(0, ne * d), s.Middle.AsSpan(0, ne * d));
            RmsNormOps.Forward<T>(a.Norm, s.Rstd2, s.Middle, w.FeedForwardNormWeight, ne, d, eps);
            FeedForward(a, s.Hidden, s.Linear, w.FeedForward, ne);
            var next = l + 1 < config.Layers ? a.Encoder[l + 1].Input : a.EncoderFinal;
            TensorPrimitives.Add(s.Middle.AsSpan(0, ne * d), a.Projection.AsSpan(0, ne * d), next.AsSpan(0, ne * d));
        }
        RmsNormOps.Forward<T>(a.EncoderOutput, a.EncoderFinalRstd, a.EncoderFinal, weights.EncoderFinalNormWeight, ne, d, eps);
    }

    private void DecoderForward(TokenBatch batch, T5CpuActivations<T> a)
    {
        int ne = rows * encoderLength, nd = rows * decoderLength, d = config.Embedding, att = config.AttentionSize, heads = config.Heads;
        T eps = T.CreateChecked(config.LayerNormEpsilon);
        var y = config.DecoderLayers > 0 ? a.Decoder[0].Input : a.DecoderFinal;
        for (int b = 0; b < rows; b++)
        {
            // Teacher forcing: position j reads target j − 1 (decoder_start at j = 0) and predicts target j.
            int firstTarget = b * batch.TokenLength + a.InputLengths[b];
            for (int j = 0; j < decoderLength; j++)
            {
                int id = j == 0 ? config.DecoderStartTokenId : j < a.TargetLengths[b] ? batch.Tokens[firstTarget + j - 1] : config.PadTokenId;
                TokenRow(id).CopyTo(y.AsSpan((b * decoderLength + j) * d, d));
            }
        }
        if (a.DecoderBiasLength != decoderLength)
        {
            RelativePositionOps.Bias<T>(a.DecoderBias, weights.DecoderRelativeBias, heads, decoderLength, decoderLength, bidirectional: false,
                config.RelativeBuckets, config.RelativeMaxDistance);
            a.DecoderBiasLength = decoderLength;
        }
        var bias = a.DecoderBias.AsSpan(0, heads * decoderLength * decoderLength);
        var encoderKeys = a.EncoderLengths.AsSpan(0, rows);
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var s = a.Decoder[l];
            var w = weights.DecoderLayers[l];
            var sa = s.SelfAttention;
            RmsNormOps.Forward<T>(a.Norm, s.Rstd1, s.Input, w.SelfAttentionNormWeight, nd, d, eps);
            Project(sa.Query, a.Norm, w.SelfAttention.Query, nd, d, att);
            Project(sa.Key, a.Norm, w.SelfAttention.Key, nd, d, att);
            Project(sa.Value, a.Norm, w.SelfAttention.Value, nd, d, att);
            // Causal: padding sits after each row's targets, so no real position sees it and no key mask is needed.
            BiasedAttentionOps.Forward<T>(sa.Output, sa.LogSumExp, sa.Query, sa.Key, sa.Value, bias, [], rows, decoderLength, decoderLength, heads, config.HeadSize, causal: true, scale: T.One);
            Project(a.Projection, sa.Output, w.SelfAttention.Output, nd, att, d);
            TensorPrimitives.Add(s.Input.AsSpan(0, nd * d), a.Projection.AsSpan(0, nd * d), s.Middle1.AsSpan(0, nd * d));

            var ca = s.CrossAttention;
            RmsNormOps.Forward<T>(a.Norm, s.Rstd2, s.Middle1, w.CrossAttentionNormWeight, nd, d, eps);
            Project(ca.Query, a.Norm, w.CrossAttention.Query, nd, d, att);
            Project(ca.Key, a.EncoderOutput, w.CrossAttention.Key, ne, d, att);
            Project(ca.Value, a.EncoderOutput, w.CrossAttention.Value, ne, d, att);
            BiasedAttentionOps.Forward<T>(ca.Output, ca.LogSumExp, ca.Query, ca.Key, ca.Value, [], encoderKeys, rows, decoderLength, encoderLength, heads, config.HeadSize, causal: false, scale: T.One);
            Project(a.Projection, ca.Output, w.CrossAttention.Output, nd, att, d);
            TensorPrimitives.Add(s.Middle1.AsSpan(0, nd * d), a.Projection.AsSpan(0, nd * d), s.Middle2.AsSpan(0, nd * d));

            RmsNormOps.Forward<T>(a.Norm, s.Rstd3, s.Middle2, w.FeedForwardNormWeight, nd, d, eps);
            FeedForward(a, s.Hidden, s.Linear, w.FeedForward, nd);
            var next = l + 1 < config.DecoderLayers ? a.Decoder[l + 1].Input : a.DecoderFinal;
            TensorPrimitives.Add(s.Middle2.AsSpan(0, nd * d), a.Projection.AsSpan(0, nd * d), next.AsSpan(0, nd * d));
        }
        RmsNormOps.Forward<T>(a.DecoderOutput, a.DecoderFinalRstd, a.DecoderFinal, weights.DecoderFinalNormWeight, nd, d, eps);
    }

    /// <summary>a.Projection [n, d] = wo·act(a.Norm) (relu(wi·x), or gelu_new(wi_0·x) ⊙ wi_1·x), saving the pre-activations.</summary>
    private void FeedForward(T5CpuActivations<T> a, T[] hidden, T[] linear, T5FeedForwardWeights<T> w, int n)
    {
        int d = config.Embedding, ff = config.FeedForwardSize;
        Project(hidden, a.Norm, w.Input, n, d, ff);
        if (config.IsGated)
        {
            Project(linear, a.Norm, w.Linear!, n, d, ff);
            GatedGeluOps.Forward<T>(a.Wide.AsSpan(0, n * ff), hidden.AsSpan(0, n * ff), linear.AsSpan(0, n * ff));
        }
        else ReluOps.Forward<T>(a.Wide.AsSpan(0, n * ff), hidden.AsSpan(0, n * ff));
        Project(a.Projection, a.Wide, w.Output, n, ff, d);
    }

    /// <summary>Logits, loss and (optionally) d(decoder output) at target positions only, in chunks of rows.</summary>
    private T LanguageModelHead(TokenBatch batch, T5CpuActivations<T> a, bool withGradient, bool countGreedyMatches)
    {
        int nd = rows * decoderLength, d = config.Embedding;
        var head = a.Head;
        head.Clear();
        for (int b = 0; b < rows; b++)
        {
            int first = b * batch.SequenceLength + batch.RowPromptLength(b) + a.InputLengths[b] - 1;
            for (int j = 0; j < a.TargetLengths[b]; j++) head.Add(b * decoderLength + j, batch.Targets[first + j], b);
        }
        return head.Run(a.DecoderOutput, weights.HeadWeight, HeadScale, withGradient ? a.DecoderOutputGradient.AsSpan(0, nd * d) : default, lossGradientWeight, countGreedyMatches);
    }

    private void RunBackward(TokenBatch batch, bool accumulate)
    {
        var a = activations!;
        int ne = rows * encoderLength, nd = rows * decoderLength, d = config.Embedding, att = config.AttentionSize, heads = config.Heads, hs = config.HeadSize;
        var encoderKeys = a.EncoderLengths.AsSpan(0, rows);

        var dDecoder = a.DecoderGradient;
        dDecoder.AsSpan(0, nd * d).Clear();
        RmsNormOps.Backward<T>(dDecoder, a.DecoderOutputGradient, a.DecoderFinal, weights.DecoderFinalNormWeight, a.DecoderFinalRstd, nd, d);
        var dEncoderOutput = a.EncoderOutputGradient;
        dEncoderOutput.AsSpan(0, ne * d).Clear();
        var decoderBias = a.DecoderBias.AsSpan(0, heads * decoderLength * decoderLength);
        for (int l = config.DecoderLayers - 1; l >= 0; l--)
        {
            var s = a.Decoder[l];
            var w = weights.DecoderLayers[l];
            FeedForwardBackward(a, dDecoder, s.Hidden, s.Linear, w.FeedForward, nd);
            RmsNormOps.Backward<T>(dDecoder, a.Norm, s.Middle2, w.FeedForwardNormWeight, s.Rstd3, nd, d);

            var ca = s.CrossAttention;
            InputGradient(a.GradientAttention, dDecoder, w.CrossAttention.Output, nd, att, d);
            BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, ca.Query, ca.Key, ca.Value, ca.Output, ca.LogSumExp,
                [], encoderKeys, rows, decoderLength, encoderLength, heads, hs, causal: false, scale: T.One);
            InputGradient(a.Norm, a.GradientQuery, w.CrossAttention.Query, nd, d, att);
            RmsNormOps.Backward<T>(dDecoder, a.Norm, s.Middle1, w.CrossAttentionNormWeight, s.Rstd2, nd, d);
            // Every decoder layer reads the same encoder output: its k and v gradients add up there.
            InputGradient(dEncoderOutput, a.GradientKey, w.CrossAttention.Key, ne, d, att, accumulate: true);
            InputGradient(dEncoderOutput, a.GradientValue, w.CrossAttention.Value, ne, d, att, accumulate: true);

            var sa = s.SelfAttention;
            InputGradient(a.GradientAttention, dDecoder, w.SelfAttention.Output, nd, att, d);
            BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, sa.Query, sa.Key, sa.Value, sa.Output, sa.LogSumExp,
                decoderBias, [], rows, decoderLength, decoderLength, heads, hs, causal: true, scale: T.One);
            QkvInputGradient(a, w.SelfAttention, nd);
            RmsNormOps.Backward<T>(dDecoder, a.Norm, s.Input, w.SelfAttentionNormWeight, s.Rstd1, nd, d);
        }

        var dEncoder = a.EncoderGradient;
        dEncoder.AsSpan(0, ne * d).Clear();
        RmsNormOps.Backward<T>(dEncoder, dEncoderOutput, a.EncoderFinal, weights.EncoderFinalNormWeight, a.EncoderFinalRstd, ne, d);
        var encoderBias = a.EncoderBias.AsSpan(0, heads * encoderLength * encoderLength);
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            var s = a.Encoder[l];
            var w = weights.EncoderLayers[l];
            FeedForwardBackward(a, dEncoder, s.Hidden, s.Linear, w.FeedForward, ne);
            RmsNormOps.Backward<T>(dEncoder, a.Norm, s.Middle, w.FeedForwardNormWeight, s.Rstd2, ne, d);
            var sa = s.SelfAttention;
            InputGradient(a.GradientAttention, dEncoder, w.SelfAttention.Output, ne, att, d);
            BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, sa.Query, sa.Key, sa.Value, sa.Output, sa.LogSumExp,
                encoderBias, encoderKeys, rows, encoderLength, encoderLength, heads, hs, causal: false, scale: T.One);
            QkvInputGradient(a, w.SelfAttention, ne);
            RmsNormOps.Backward<T>(dEncoder, a.Norm, s.Input, w.SelfAttentionNormWeight, s.Rstd1, ne, d);
        }
        EmbeddingOps.PromptGradient<T>(state.Gradient, dEncoder, batch.PromptIndex, state.Layout!.Offsets, rows, encoderLength, d, accumulate);
    }

    /// <summary>a.Norm [n, d] = d(feed-forward input) from dOut [n, d], through wo, the activation and wi (and wi_1).</summary>
    private void FeedForwardBackward(T5CpuActivations<T> a, T[] dOut, T[] hidden, T[] linear, T5FeedForwardWeights<T> w, int n)
    {
        int d = config.Embedding, ff = config.FeedForwardSize;
        var dWide = a.GradientWide.AsSpan(0, n * ff);
        InputGradient(a.GradientWide, dOut, w.Output, n, ff, d);
        if (config.IsGated)
        {
            GatedGeluOps.Backward<T>(dWide, a.GradientLinear.AsSpan(0, n * ff), dWide, hidden.AsSpan(0, n * ff), linear.AsSpan(0, n * ff));
            InputGradient(a.Norm, a.GradientWide, w.Input, n, d, ff);
            InputGradient(a.Norm, a.GradientLinear, w.Linear!, n, d, ff, accumulate: true);
        }
        else
        {
            ReluOps.Backward<T>(dWide, dWide, hidden.AsSpan(0, n * ff));
            InputGradient(a.Norm, a.GradientWide, w.Input, n, d, ff);
        }
    }

    /// <summary>a.Norm [n, d] = dq·Wq + dk·Wk + dv·Wv: self-attention's input reaches q, k and v.</summary>
    private void QkvInputGradient(T5CpuActivations<T> a, T5AttentionWeights<T> w, int n)
    {
        int d = config.Embedding, att = config.AttentionSize;
        InputGradient(a.Norm, a.GradientQuery, w.Query, n, d, att);
        InputGradient(a.Norm, a.GradientKey, w.Key, n, d, att, accumulate: true);
        InputGradient(a.Norm, a.GradientValue, w.Value, n, d, att, accumulate: true);
    }

    private ReadOnlySpan<T> TokenRow(int id) => weights.TokenEmbedding.AsSpan(id * config.Embedding, config.Embedding);

    /// <summary>y [n, outDim] = x [n, inDim] · Wᵀ with W [outDim, inDim] (nn.Linear, no bias).</summary>
    private static void Project(Span<T> y, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, int n, int inDim, int outDim)
        => CpuGemm.Gemm(false, true, n, outDim, inDim, T.One, x, inDim, weight, inDim, T.Zero, y, outDim);

    /// <summary>dx [n, inDim] (=, or += when accumulating) dy [n, outDim] · W, W [outDim, inDim]. The only GEMM a frozen layer needs backward.</summary>
    private static void InputGradient(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> weight, int n, int inDim, int outDim, bool accumulate = false)
        => CpuGemm.Gemm(false, false, n, inDim, outDim, T.One, dy, outDim, weight, inDim, accumulate ? T.One : T.Zero, dx, inDim);
}

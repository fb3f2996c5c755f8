using System.Runtime.CompilerServices;
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
public sealed partial class CpuT5Engine<T> : CpuEngine<T>, IEncoderDecoderEngine where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly T5Weights<T> weights;
    private readonly T5Config config;
    private T5CpuActivations<T>? activations;
    /// <summary>Shape of the last forward: rows, encoder positions (P + longest input), decoder positions (longest target).</summary>
    private int rows, encoderLength, decoderLength;

    /// <remarks>T5 has no position table; MaxPositions bounds each stack's length (config n_positions, else <see cref="T5Config.DefaultMaxPositions"/>).</remarks>
    public CpuT5Engine(T5Weights<T> weights) : base(weights.Config.Embedding, weights.Config.VocabSize, weights.Config.MaxPositions)
    {
        this.weights = weights;
        config = weights.Config;
    }

    /// <summary>Decoder positions of the last batch (its longest target): the middle axis of <see cref="Logits"/>.</summary>
    public int DecoderLength => decoderLength;

    private protected override CpuLanguageModelHead<T> Head => activations!.Head;
    private protected override void ReleaseActivations() => activations = null;

    /// <summary>
    /// Decoder logits [B, <see cref="DecoderLength"/>, V] at every decoder position (tests and generation; training
    /// never materialises these). Position j of row b predicts target j; positions past a row's targets are padding.
    /// </summary>
    public void Logits(TokenBatch batch, Span<T> logits)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        int n = rows * decoderLength;
        if (logits.Length < (long)n * config.VocabSize) throw new ArgumentException($"Logits buffer needs {(long)n * config.VocabSize} values.");
        CpuGemm.Gemm(false, true, n, config.VocabSize, config.Embedding, HeadScale, activations!.DecoderOutput, config.Embedding,
            weights.HeadWeight, config.Embedding, T.Zero, logits, config.VocabSize);
    }

    public void DecoderNextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
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

    /// <summary>T5 v1.0 (tied) scales the decoder output by d_model^-0.5 before the shared-embedding head; v1.1's own lm_head does not.</summary>
    private T HeadScale => config.RescalesDecoderOutput ? T.One / T.Sqrt(T.CreateChecked(config.Embedding)) : T.One;

    private T5CpuActivations<T> Plan(int batchRows, int encoder, int decoder)
    {
        var a = activations;
        if (a is null || a.Rows < batchRows || a.EncoderLength < encoder || a.DecoderLength < decoder)
        {
            // Grow every dimension to the largest seen so far, so alternating batch shapes settle on one plan.
            activations = a = GrowActivations(Math.Max(batchRows, a?.Rows ?? 0), Math.Max(encoder, a?.EncoderLength ?? 0), Math.Max(decoder, a?.DecoderLength ?? 0));
        }
        return a;
    }

    // Apart from Plan so that the closure below is allocated only when the activations grow, never in a steady step.
    private T5CpuActivations<T> GrowActivations(int r, int e, int d)
    {
        long positions = (long)r * (e + d);
        // The floor: every layer's input plus the four [positions, d] buffers of each stack; the estimate: the device plan's tensors.
        EnsureHostMemory(r, positions, (config.Layers + config.DecoderLayers + 8L) * positions * config.Embedding,
            () => T5DevicePlan.Measure(config, r, e, d).Arena.Bytes / sizeof(float) * Unsafe.SizeOf<T>());
        activations = null;
        return new T5CpuActivations<T>(config, r, e, d);
    }

    private protected override T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead)
    {
        var a = Encode(batch);
        DecoderForward(batch, a);
        return languageModelHead ? LanguageModelHead(batch, a, withGradient, countGreedyMatches) : T.Zero;
    }

    /// <summary>Checks the batch, plans for it and runs the encoder (the decoder's inputs are read, not run).</summary>
    private T5CpuActivations<T> Encode(TokenBatch batch)
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
        return a;
    }

    private void EncoderForward(TokenBatch batch, T5CpuActivations<T> a)
    {
        int ne = rows * encoderLength, d = config.Embedding;
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
        var bias = PositionBias(a.EncoderBias, ref a.EncoderBiasLength, weights.EncoderRelativeBias, encoderLength, bidirectional: true);
        var keys = a.EncoderLengths.AsSpan(0, rows);
        for (int l = 0; l < config.Layers; l++)
        {
            var s = a.Encoder[l];
            var w = weights.EncoderLayers[l];
            SelfAttention(a, s.Input, s.Rstd1, s.Middle, w.SelfAttentionNormWeight, w.SelfAttention, s.SelfAttention, bias, keys, encoderLength, causal: false);
            FeedForwardSublayer(a.Norm, a.Wide, a.Projection, s.Middle, s.Rstd2, l + 1 < config.Layers ? a.Encoder[l + 1].Input : a.EncoderFinal, w.FeedForwardNormWeight, w.FeedForward,
                s.Hidden, s.Linear, ne);
        }
        RmsNormOps.Forward<T>(a.EncoderOutput, a.EncoderFinalRstd, a.EncoderFinal, weights.EncoderFinalNormWeight, ne, d, eps);
    }

    /// <summary>The [H, T, T] position-bias plane for <paramref name="length"/>, rebuilt only when the length differs from the one it was built for.</summary>
    private Span<T> PositionBias(T[] plane, ref int builtLength, T[] table, int length, bool bidirectional)
    {
        if (builtLength != length)
        {
            RelativePositionOps.Bias<T>(plane, table, config.Heads, length, length, bidirectional, config.RelativeBuckets, config.RelativeMaxDistance);
            builtLength = length;
        }
        return plane.AsSpan(0, config.Heads * length * length);
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
        var bias = PositionBias(a.DecoderBias, ref a.DecoderBiasLength, weights.DecoderRelativeBias, decoderLength, bidirectional: false);
        var encoderKeys = a.EncoderLengths.AsSpan(0, rows);
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var s = a.Decoder[l];
            var w = weights.DecoderLayers[l];
            // Causal: padding sits after each row's targets, so no real position sees it and no key mask is needed.
            SelfAttention(a, s.Input, s.Rstd1, s.Middle1, w.SelfAttentionNormWeight, w.SelfAttention, s.SelfAttention, bias, [], decoderLength, causal: true);

            var ca = s.CrossAttention;
            RmsNormOps.Forward<T>(a.Norm, s.Rstd2, s.Middle1, w.CrossAttentionNormWeight, nd, d, eps);
            Project(ca.Query, a.Norm, w.CrossAttention.Query, nd, d, att);
            Project(ca.Key, a.EncoderOutput, w.CrossAttention.Key, ne, d, att);
            Project(ca.Value, a.EncoderOutput, w.CrossAttention.Value, ne, d, att);
            BiasedAttentionOps.Forward<T>(ca.Output, ca.LogSumExp, ca.Query, ca.Key, ca.Value, [], encoderKeys, rows, decoderLength, encoderLength, heads, config.HeadSize, causal: false, scale: T.One);
            Project(a.Projection, ca.Output, w.CrossAttention.Output, nd, att, d);
            TensorPrimitives.Add(s.Middle1.AsSpan(0, nd * d), a.Projection.AsSpan(0, nd * d), s.Middle2.AsSpan(0, nd * d));

            FeedForwardSublayer(a.Norm, a.Wide, a.Projection, s.Middle2, s.Rstd3, l + 1 < config.DecoderLayers ? a.Decoder[l + 1].Input : a.DecoderFinal, w.FeedForwardNormWeight, w.FeedForward,
                s.Hidden, s.Linear, nd);
        }
        RmsNormOps.Forward<T>(a.DecoderOutput, a.DecoderFinalRstd, a.DecoderFinal, weights.DecoderFinalNormWeight, nd, d, eps);
    }

    /// <summary>
    /// output = input + o(attention(q, k, v of rms(input))) over <paramref name="length"/> positions per row, saving q, k, v,
    /// the attention output and its logsumexp in <paramref name="saved"/>.
    /// </summary>
    private void SelfAttention(T5CpuActivations<T> a, T[] input, T[] rstd, T[] output, T[] normWeight, T5AttentionWeights<T> w,
        T5CpuActivations<T>.AttentionSaved saved, ReadOnlySpan<T> bias, ReadOnlySpan<int> keyLengths, int length, bool causal)
    {
        int n = rows * length, d = config.Embedding, att = config.AttentionSize;
        RmsNormOps.Forward<T>(a.Norm, rstd, input, normWeight, n, d, T.CreateChecked(config.LayerNormEpsilon));
        Project(saved.Query, a.Norm, w.Query, n, d, att);
        Project(saved.Key, a.Norm, w.Key, n, d, att);
        Project(saved.Value, a.Norm, w.Value, n, d, att);
        BiasedAttentionOps.Forward<T>(saved.Output, saved.LogSumExp, saved.Query, saved.Key, saved.Value, bias, keyLengths, rows, length, length, config.Heads,
            config.HeadSize, causal, scale: T.One);
        Project(a.Projection, saved.Output, w.Output, n, att, d);
        TensorPrimitives.Add(input.AsSpan(0, n * d), a.Projection.AsSpan(0, n * d), output.AsSpan(0, n * d));
    }

    /// <summary>The reverse of <see cref="SelfAttention"/>: <paramref name="dResidual"/> is d(output) in, d(input) out.</summary>
    private void SelfAttentionBackward(T5CpuActivations<T> a, T[] dResidual, T[] input, T[] rstd, T[] normWeight, T5AttentionWeights<T> w,
        T5CpuActivations<T>.AttentionSaved saved, ReadOnlySpan<T> bias, ReadOnlySpan<int> keyLengths, int length, bool causal)
    {
        int n = rows * length, d = config.Embedding, att = config.AttentionSize;
        InputGradient(a.GradientAttention, dResidual, w.Output, n, att, d);
        BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, saved.Query, saved.Key, saved.Value, saved.Output,
            saved.LogSumExp, bias, keyLengths, rows, length, length, config.Heads, config.HeadSize, causal, scale: T.One);
        InputGradient(a.Norm, a.GradientQuery, w.Query, n, d, att);
        InputGradient(a.Norm, a.GradientKey, w.Key, n, d, att, accumulate: true);
        InputGradient(a.Norm, a.GradientValue, w.Value, n, d, att, accumulate: true);
        RmsNormOps.Backward<T>(dResidual, a.Norm, input, normWeight, rstd, n, d);
    }

    /// <summary>
    /// output = input + wo·act(rms(input)) (relu(wi·x), or gelu_new(wi_0·x) ⊙ wi_1·x), saving the pre-activations; norm,
    /// wide and projection are scratch. Output may be the input (the cached decoding step updates its residual in place).
    /// </summary>
    private void FeedForwardSublayer(T[] norm, T[] wide, T[] projection, T[] input, T[] rstd, T[] output, T[] normWeight, T5FeedForwardWeights<T> w,
        T[] hidden, T[] linear, int n)
    {
        int d = config.Embedding, ff = config.FeedForwardSize;
        RmsNormOps.Forward<T>(norm, rstd, input, normWeight, n, d, T.CreateChecked(config.LayerNormEpsilon));
        Project(hidden, norm, w.Input, n, d, ff);
        if (config.IsGated)
        {
            Project(linear, norm, w.Linear!, n, d, ff);
            GatedGeluOps.Forward<T>(wide.AsSpan(0, n * ff), hidden.AsSpan(0, n * ff), linear.AsSpan(0, n * ff));
        }
        else ReluOps.Forward<T>(wide.AsSpan(0, n * ff), hidden.AsSpan(0, n * ff));
        Project(projection, wide, w.Output, n, ff, d);
        TensorPrimitives.Add(input.AsSpan(0, n * d), projection.AsSpan(0, n * d), output.AsSpan(0, n * d));
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

    private protected override void RunBackward(TokenBatch batch, bool accumulate)
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
            FeedForwardBackward(a, dDecoder, s.Middle2, s.Rstd3, w.FeedForwardNormWeight, w.FeedForward, s.Hidden, s.Linear, nd);

            var ca = s.CrossAttention;
            InputGradient(a.GradientAttention, dDecoder, w.CrossAttention.Output, nd, att, d);
            BiasedAttentionOps.Backward<T>(a.GradientQuery, a.GradientKey, a.GradientValue, a.GradientAttention, ca.Query, ca.Key, ca.Value, ca.Output, ca.LogSumExp,
                [], encoderKeys, rows, decoderLength, encoderLength, heads, hs, causal: false, scale: T.One);
            InputGradient(a.Norm, a.GradientQuery, w.CrossAttention.Query, nd, d, att);
            RmsNormOps.Backward<T>(dDecoder, a.Norm, s.Middle1, w.CrossAttentionNormWeight, s.Rstd2, nd, d);
            // Every decoder layer reads the same encoder output: its k and v gradients add up there.
            InputGradient(dEncoderOutput, a.GradientKey, w.CrossAttention.Key, ne, d, att, accumulate: true);
            InputGradient(dEncoderOutput, a.GradientValue, w.CrossAttention.Value, ne, d, att, accumulate: true);

            SelfAttentionBackward(a, dDecoder, s.Input, s.Rstd1, w.SelfAttentionNormWeight, w.SelfAttention, s.SelfAttention, decoderBias, [], decoderLength, causal: true);
        }

        var dEncoder = a.EncoderGradient;
        dEncoder.AsSpan(0, ne * d).Clear();
        RmsNormOps.Backward<T>(dEncoder, dEncoderOutput, a.EncoderFinal, weights.EncoderFinalNormWeight, a.EncoderFinalRstd, ne, d);
        var encoderBias = a.EncoderBias.AsSpan(0, heads * encoderLength * encoderLength);
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            var s = a.Encoder[l];
            var w = weights.EncoderLayers[l];
            FeedForwardBackward(a, dEncoder, s.Middle, s.Rstd2, w.FeedForwardNormWeight, w.FeedForward, s.Hidden, s.Linear, ne);
            SelfAttentionBackward(a, dEncoder, s.Input, s.Rstd1, w.SelfAttentionNormWeight, w.SelfAttention, s.SelfAttention, encoderBias, encoderKeys, encoderLength, causal: false);
        }
        EmbeddingOps.PromptGradient<T>(state.Gradient, dEncoder, batch.PromptIndex, state.Layout!.Offsets, rows, encoderLength, d, accumulate);
    }

    /// <summary>The reverse of <see cref="FeedForwardSublayer"/>: <paramref name="dOut"/> is d(output) in, d(input) out.</summary>
    private void FeedForwardBackward(T5CpuActivations<T> a, T[] dOut, T[] input, T[] rstd, T[] normWeight, T5FeedForwardWeights<T> w, T[] hidden, T[] linear, int n)
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
        RmsNormOps.Backward<T>(dOut, a.Norm, input, normWeight, rstd, n, d);
    }

    private ReadOnlySpan<T> TokenRow(int id) => weights.TokenEmbedding.AsSpan(id * config.Embedding, config.Embedding);
}

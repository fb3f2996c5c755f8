using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// The T5 fast path: <see cref="CpuT5Engine{T}"/>'s forward and input-gradient-only reverse pass, op for op, as
/// handwritten kernels plus GEMMs on any <see cref="IComputeDevice"/> (a real GPU, or the kernel emulator). Weights are
/// uploaded once into one allocation; activations live in one plan per (rows, encoder length, decoder length)
/// capacity, reused step after step; logits are computed at target positions only.
/// </summary>
public sealed partial class CudaT5Engine : DeviceEngine, IEncoderDecoderEngine
{
    private readonly T5Config config;
    private readonly T5DeviceWeights weights;
    private T5DevicePlan? plan;
    /// <summary>Shape of the last forward: rows, encoder positions (P + longest input), decoder positions (longest target).</summary>
    private int rows, encoderLength, decoderLength;

    /// <param name="bf16">Store the attention and feed-forward matrices in bf16 and run their GEMMs on bf16 tensor cores (<see cref="Precision.Bf16"/>).</param>
    public CudaT5Engine(IComputeDevice device, T5Weights<float> hostWeights, bool ownsDevice = false, bool bf16 = false)
        : this(device, hostWeights.Config, new HostWeightSource<T5Weights<float>>(hostWeights), ownsDevice, bf16) { }

    /// <param name="weights">Host weights, or a checkpoint streamed tensor by tensor (<see cref="T5Checkpoint.Open"/>).</param>
    internal CudaT5Engine(IComputeDevice device, T5Config config, WeightSource<T5Weights<float>> weights, bool ownsDevice = false, bool bf16 = false)
        : base(device, ownsDevice, config.Embedding, config.VocabSize, config.MaxPositions, bf16)
    {
        this.config = config;
        this.weights = T5DeviceWeights.Upload(device, config, weights, bf16);
    }


    private protected override DeviceSpan<ushort> Bf16Operands => plan!.Bf16Operands;
    private protected override DeviceSpan<ushort> ResidualGradientBf16 => plan!.ResidualGradientBf16;

    /// <summary>Whether the current plan recomputes each layer in the reverse pass (<see cref="Recomputation"/>).</summary>
    public override bool RecomputesActivations => plan?.Recomputes ?? throw new InvalidOperationException("Run a batch first.");

    /// <summary>Decoder positions of the last batch (its longest target): the middle axis of <see cref="Logits"/>.</summary>
    public int DecoderLength => decoderLength;
    private protected override DeviceLanguageModelHead Head => plan!.Head;

    /// <summary>Decoder logits [B, <see cref="DecoderLength"/>, V] at every decoder position (tests and generation; training never materialises these).</summary>
    public void Logits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        int n = rows * decoderLength, vocab = config.VocabSize, d = config.Embedding;
        if (logits.Length < (long)n * vocab) throw new ArgumentException($"Logits buffer needs {(long)n * vocab} values.");
        using var all = device.Allocate<float>((long)n * vocab);
        DeviceLanguageModelHead.AllRowLogits(device, plan!.DecoderOutput, weights.Head, HeadScale, n, d, vocab, all.Span);
        device.CopyToHost(all.Span, logits[..(n * vocab)]);
    }

    public void DecoderLogits(TokenBatch batch, Span<float> logits) => Logits(batch, logits);

    public void DecoderNextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        var p = plan!;
        for (int b = 0; b < rows; b++) p.Head.HostHiddenRows[b] = b * decoderLength + p.HostTargetLengths[b] - 1;
        p.Head.SetTargets(rows);
        p.Head.NextTokens(p.DecoderOutput, weights.Head, HeadScale, rows, default, tokens);
    }

    private protected override void DisposeModel()
    {
        plan?.Dispose();
        weights.Dispose();
    }

    /// <summary>T5 v1.0 (tied) scales the decoder output by d_model^-0.5 before the shared-embedding head; v1.1's own lm_head does not.</summary>
    private float HeadScale => config.RescalesDecoderOutput ? 1f / MathF.Sqrt(config.Embedding) : 1f;

    private T5DevicePlan Plan(int batchRows, int encoder, int decoder) => plan is not null && plan.Fits(batchRows, encoder, decoder) ? plan : Grow(batchRows, encoder, decoder);

    /// <summary>A plan that covers these lengths and the current one's (apart from <see cref="Plan"/>: its closure would allocate on every call).</summary>
    private T5DevicePlan Grow(int batchRows, int encoder, int decoder)
    {
        var (r, e, d) = T5DevicePlan.Capacity(batchRows, encoder, decoder, plan);
        bool recomputes = RecomputesNextPlan(recomputes => T5DevicePlan.Measure(config, r, e, d, bf16, recomputes).Arena.Bytes, plan?.Arena.Bytes ?? 0);
        plan?.Dispose();
        plan = null;
        plan = T5DevicePlan.Allocate(device, config, r, e, d, bf16, recomputes);
        return plan;
    }

    /// <summary>Lays out the encoder and decoder token ids, key lengths, prompt indices and targets on the host and copies them to the device.</summary>
    private void Upload(TokenBatch batch, T5DevicePlan p)
    {
        int vocab = config.VocabSize;
        for (int b = 0; b < rows; b++)
        {
            var (input, target) = BatchChecks.RowLengths(batch, b);
            p.HostInputLengths[b] = input;
            p.HostTargetLengths[b] = target;
            p.HostEncoderLengths[b] = batch.RowPromptLength(b) + input;
            // Row stride encoderLength: after a prompt of any length the row's inputs and pads fill the rest.
            int rowStart = b * batch.TokenLength;
            for (int i = 0; i < encoderLength; i++)
                p.HostEncoderTokens[b * encoderLength + i] = i < input ? batch.Tokens[rowStart + i] : config.PadTokenId;
            // Teacher forcing: position j reads target j − 1 (decoder_start at j = 0) and predicts target j.
            int firstTarget = rowStart + input;
            for (int j = 0; j < decoderLength; j++)
                p.HostDecoderTokens[b * decoderLength + j] = j == 0 ? config.DecoderStartTokenId : j < target ? batch.Tokens[firstTarget + j - 1] : config.PadTokenId;
        }
        var head = p.Head;
        int count = 0;
        for (int b = 0; b < rows; b++)
        {
            int first = b * batch.SequenceLength + batch.RowPromptLength(b) + p.HostInputLengths[b] - 1;
            for (int j = 0; j < p.HostTargetLengths[b]; j++)
            {
                int target = batch.Targets[first + j];
                if ((uint)target >= (uint)vocab)
                    throw new ArgumentException($"Batch row {b} has target id {target}, outside the vocabulary [0, {vocab}).");
                head.HostHiddenRows[count] = b * decoderLength + j;
                head.HostTargetIds[count] = target;
                head.HostTargetRow[count] = b;
                count++;
            }
        }
        head.SetTargets(count);
        int encoderTokens = rows * encoderLength, decoderTokens = rows * decoderLength;
        if (encoderTokens > 0) device.CopyToDevice<int>(p.HostEncoderTokens.AsSpan(0, encoderTokens), p.EncoderTokens.Slice(0, encoderTokens));
        device.CopyToDevice<int>(p.HostDecoderTokens.AsSpan(0, decoderTokens), p.DecoderTokens.Slice(0, decoderTokens));
        device.CopyToDevice<int>(batch.PromptIndex.AsSpan(0, rows), p.PromptIndex.Slice(0, rows));
        device.CopyToDevice<int>(p.HostEncoderLengths.AsSpan(0, rows), p.EncoderLengths.Slice(0, rows));
        p.UploadBuckets(config, encoderLength, decoderLength);
    }

    private protected override float RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead)
    {
        var (encoder, decoder) = BatchChecks.EncoderDecoder(batch, state.Layout, config.VocabSize, config.MaxPositions);
        var p = Encode(batch, encoder, decoder);
        DecoderForward(p);
        return languageModelHead ? LanguageModelHead(p, withGradient, countGreedyMatches) : 0f;
    }

    /// <summary>Sizes the plan for the batch, uploads it and runs the encoder.</summary>
    private T5DevicePlan Encode(TokenBatch batch, int encoder, int decoder)
    {
        var p = Plan(batch.Rows, encoder, decoder);
        rows = batch.Rows;
        encoderLength = encoder;
        decoderLength = decoder;
        Upload(batch, p);
        EncoderForward(p);
        return p;
    }

    /// <summary>The encoder output every decoder layer's cross-attention k/v GEMMs read (training and cached decoding alike).</summary>
    private GemmInput EncoderOutputOperand(T5DevicePlan p) => bf16 ? GemmInput.OfBf16(p.EncoderOutputBf16) : p.EncoderOutput;

    private void EncoderForward(T5DevicePlan p)
    {
        int ne = rows * encoderLength, d = config.Embedding;
        float eps = (float)config.LayerNormEpsilon;
        var x = config.Layers > 0 ? p.Encoder[0].Input : p.EncoderFinal;
        EmbeddingForward.Launch(device, x.Slice(0, (long)ne * d), p.EncoderTokens, state.Prompts, p.PromptIndex.Slice(0, rows), state.Offsets,
            weights.TokenEmbedding, p.ZeroPositions, rows, encoderLength, encoderLength, d);
        for (int l = 0; l < config.Layers; l++) EncoderLayerForward(p, l, recomputing: false);
        if (bf16) RmsNormForward.Launch(device, p.EncoderOutputBf16, p.EncoderFinalRstd, p.EncoderFinal, weights.EncoderFinalNormWeight, ne, d, eps);
        else RmsNormForward.Launch(device, p.EncoderOutput, p.EncoderFinalRstd, p.EncoderFinal, weights.EncoderFinalNormWeight, ne, d, eps);
    }

    /// <summary>Encoder block <paramref name="l"/>, saving what its reverse pass reads; when <paramref name="recomputing"/> (a plan that recomputes, in the reverse pass) it stops once those are refilled.</summary>
    private void EncoderLayerForward(T5DevicePlan p, int l, bool recomputing)
    {
        int ne = rows * encoderLength, d = config.Embedding;
        var s = p.Encoder[l];
        var w = weights.EncoderLayers[l];
        SelfAttention(p, s.Middle, s.Input, s.Rstd1, w.SelfAttentionNormWeight, s.SelfAttention, w.SelfAttention, encoderLength,
            weights.EncoderRelativeBias, p.EncoderBuckets, p.EncoderLengths.Slice(0, rows), causal: false);
        var normed = RmsNormForGemm(p.Norm, s.Rstd2, s.Middle, w.FeedForwardNormWeight, ne, d, (float)config.LayerNormEpsilon);
        var next = l + 1 < config.Layers ? p.Encoder[l + 1].Input : p.EncoderFinal;
        FeedForward(p, next, s.Middle, normed, s.FeedForward, w.FeedForward, ne, recomputing);
    }

    private void DecoderForward(T5DevicePlan p)
    {
        int nd = rows * decoderLength, d = config.Embedding;
        float eps = (float)config.LayerNormEpsilon;
        var y = config.DecoderLayers > 0 ? p.Decoder[0].Input : p.DecoderFinal;
        EmbeddingForward.Launch(device, y.Slice(0, (long)nd * d), p.DecoderTokens, default, default, default,
            weights.TokenEmbedding, p.ZeroPositions, rows, decoderLength, decoderLength, d);
        for (int l = 0; l < config.DecoderLayers; l++) DecoderLayerForward(p, l, recomputing: false);
        RmsNormForward.Launch(device, p.DecoderOutput, p.DecoderFinalRstd, p.DecoderFinal, weights.DecoderFinalNormWeight, nd, d, eps);
    }

    /// <summary>Decoder block <paramref name="l"/>, as <see cref="EncoderLayerForward"/>.</summary>
    private void DecoderLayerForward(T5DevicePlan p, int l, bool recomputing)
    {
        int ne = rows * encoderLength, nd = rows * decoderLength, d = config.Embedding, att = config.AttentionSize;
        float eps = (float)config.LayerNormEpsilon;
        var s = p.Decoder[l];
        var w = weights.DecoderLayers[l];
        // Causal: padding sits after each row's targets, so no real position sees it and no key mask is needed.
        SelfAttention(p, s.Middle1, s.Input, s.Rstd1, w.SelfAttentionNormWeight, s.SelfAttention, w.SelfAttention, decoderLength,
            weights.DecoderRelativeBias, p.DecoderBuckets, default, causal: true);

        var ca = s.CrossAttention;
        var normed = RmsNormForGemm(p.Norm, s.Rstd2, s.Middle1, w.CrossAttentionNormWeight, nd, d, eps);
        // Cross-attention: q from the decoder, k and v (one GEMM) from the encoder's output.
        ProjectTo(ca.Fp32.Query, ca.Bf16.Query, normed, w.CrossAttention.Query, nd, att);
        ProjectTo(ca.Fp32.KeyValue, ca.Bf16.KeyValue, EncoderOutputOperand(p), w.CrossAttention.KeyValue, ne, 2 * att);
        Attend(ca, default, default, p.EncoderLengths.Slice(0, rows), decoderLength, encoderLength, causal: false);
        Residual(s.Middle2, s.Middle1, AttentionOutput(ca), w.CrossAttention.Output, nd, att, d);

        normed = RmsNormForGemm(p.Norm, s.Rstd3, s.Middle2, w.FeedForwardNormWeight, nd, d, eps);
        var next = l + 1 < config.DecoderLayers ? p.Decoder[l + 1].Input : p.DecoderFinal;
        FeedForward(p, next, s.Middle2, normed, s.FeedForward, w.FeedForward, nd, recomputing);
    }

    /// <summary>
    /// output [n, d] = residual + wo·act(x) (relu(wi·x), or gelu_new(wi_0·x) ⊙ wi_1·x) with x the feed-forward norm's output,
    /// saving the pre-activations; only those when <paramref name="savedOnly"/>.
    /// </summary>
    private void FeedForward(T5DevicePlan p, DeviceSpan<float> output, DeviceSpan<float> residual, GemmInput normed, T5DevicePlan.FeedForwardSaved saved,
        T5DeviceWeights.FeedForward w, int n, bool savedOnly)
    {
        int d = config.Embedding, ff = config.FeedForwardSize;
        long count = (long)n * ff;
        if (bf16)
        {
            ProjectToBf16(saved.HiddenBf16, normed, w.Input, n, d, ff);
            if (config.IsGated) ProjectToBf16(saved.LinearBf16, normed, w.Linear, n, d, ff);
        }
        else
        {
            Project(saved.Hidden, normed, w.Input, n, d, ff);
            if (config.IsGated) Project(saved.Linear, normed, w.Linear, n, d, ff);
        }
        if (savedOnly) return;
        var activated = GemmInputBuffer(p.Wide, count);
        if (config.IsGated)
        {
            if (bf16) GatedGeluForward.Launch(device, activated.Bf16, saved.HiddenBf16.Slice(0, count), saved.LinearBf16.Slice(0, count));
            else GatedGeluForward.Launch(device, p.Wide.Slice(0, count), saved.Hidden.Slice(0, count), saved.Linear.Slice(0, count));
        }
        else if (bf16) ReluForward.Launch(device, activated.Bf16, saved.HiddenBf16.Slice(0, count));
        else ReluForward.Launch(device, p.Wide.Slice(0, count), saved.Hidden.Slice(0, count));
        Residual(output, residual, activated, w.Output, n, ff, d);
    }

    /// <summary>Logits, loss and (optionally) d(decoder output) at target positions only.</summary>
    private float LanguageModelHead(T5DevicePlan p, bool withGradient, bool countGreedyMatches)
    {
        int d = config.Embedding;
        var head = p.Head;
        // Each target's d(decoder output) lands in DecoderGradient (free until the reverse pass), then on its own position.
        float loss = head.Run(p.DecoderOutput, weights.Head, HeadScale, p.DecoderGradient, lossGradientWeight, withGradient, countGreedyMatches);
        if (withGradient)
        {
            device.Zero(p.DecoderOutputGradient.Slice(0, (long)rows * decoderLength * d));
            ScatterRows.Launch(device, p.DecoderOutputGradient, p.DecoderGradient.Slice(0, (long)head.TargetCount * d), head.HiddenRows, head.TargetCount, d);
        }
        return loss;
    }

    private protected override void RunBackward(bool accumulate)
    {
        var p = plan!;
        int ne = rows * encoderLength, nd = rows * decoderLength, d = config.Embedding, att = config.AttentionSize;
        var encoderKeys = p.EncoderLengths.Slice(0, rows);

        var dDecoder = p.DecoderGradient.Slice(0, (long)nd * d);
        device.Zero(dDecoder);
        RmsNormBackwardForGemm(dDecoder, p.DecoderOutputGradient, p.DecoderFinal, weights.DecoderFinalNormWeight, p.DecoderFinalRstd, nd, d);
        var dEncoderOutput = p.EncoderOutputGradient.Slice(0, (long)ne * d);
        device.Zero(dEncoderOutput);
        for (int l = config.DecoderLayers - 1; l >= 0; l--)
        {
            if (p.Recomputes) DecoderLayerForward(p, l, recomputing: true);
            var s = p.Decoder[l];
            var w = weights.DecoderLayers[l];
            FeedForwardBackward(p, ResidualGradientOperand(dDecoder, (long)nd * d), s.FeedForward, w.FeedForward, nd);
            RmsNormBackwardForGemm(dDecoder, p.Norm, s.Middle2, w.FeedForwardNormWeight, s.Rstd3, nd, d);

            var ca = s.CrossAttention;
            InputGradient(p.GradientAttention, ResidualGradientOperand(dDecoder, (long)nd * d), w.CrossAttention.Output, nd, att, d);
            var dProjections = AttendBackward(p, ca, default, default, encoderKeys, decoderLength, encoderLength, causal: false);
            InputGradient(p.Norm, dProjections.Query, w.CrossAttention.Query, nd, d, att);
            RmsNormBackwardForGemm(dDecoder, p.Norm, s.Middle1, w.CrossAttentionNormWeight, s.Rstd2, nd, d);
            // Every decoder layer reads the same encoder output: its k and v gradients add up there.
            InputGradient(dEncoderOutput, dProjections.KeyValue, w.CrossAttention.KeyValue, ne, d, 2 * att, accumulate: true);

            SelfAttentionBackward(p, dDecoder, s.Input, s.Rstd1, w.SelfAttentionNormWeight, s.SelfAttention, w.SelfAttention, decoderLength,
                weights.DecoderRelativeBias, p.DecoderBuckets, default, causal: true);
        }

        var dEncoder = p.EncoderGradient.Slice(0, (long)ne * d);
        device.Zero(dEncoder);
        RmsNormBackwardForGemm(dEncoder, dEncoderOutput, p.EncoderFinal, weights.EncoderFinalNormWeight, p.EncoderFinalRstd, ne, d);
        for (int l = config.Layers - 1; l >= 0; l--)
        {
            if (p.Recomputes) EncoderLayerForward(p, l, recomputing: true);
            var s = p.Encoder[l];
            var w = weights.EncoderLayers[l];
            FeedForwardBackward(p, ResidualGradientOperand(dEncoder, (long)ne * d), s.FeedForward, w.FeedForward, ne);
            RmsNormBackwardForGemm(dEncoder, p.Norm, s.Middle, w.FeedForwardNormWeight, s.Rstd2, ne, d);
            SelfAttentionBackward(p, dEncoder, s.Input, s.Rstd1, w.SelfAttentionNormWeight, s.SelfAttention, w.SelfAttention, encoderLength,
                weights.EncoderRelativeBias, p.EncoderBuckets, encoderKeys, causal: false);
        }
        PromptGradient.Launch(device, state.Gradient, dEncoder, p.PromptIndex.Slice(0, rows), state.Offsets, state.Layout!.TotalLength, rows, encoderLength, d, accumulate);
    }

    /// <summary>p.Norm [n, d] = d(feed-forward input) from dOut [n, d], through wo, the activation and wi (and wi_1).</summary>
    private void FeedForwardBackward(T5DevicePlan p, GemmInput dOut, T5DevicePlan.FeedForwardSaved saved, T5DeviceWeights.FeedForward w, int n)
    {
        int d = config.Embedding, ff = config.FeedForwardSize;
        long count = (long)n * ff;
        var dWide = p.GradientWide.Slice(0, count);
        InputGradient(dWide, dOut, w.Output, n, ff, d);
        // In bf16 the activation writes its input gradients in bf16 where wi's (wi_0's, wi_1's) input-gradient GEMMs read them.
        var dHidden = GemmInputBuffer(dWide, count);
        if (config.IsGated)
        {
            var dLinear = bf16 ? GemmInput.OfBf16(p.GradientLinearBf16.Slice(0, count)) : p.GradientLinear.Slice(0, count);
            if (bf16) GatedGeluBackward.Launch(device, dHidden.Bf16, dLinear.Bf16, dWide, saved.HiddenBf16.Slice(0, count), saved.LinearBf16.Slice(0, count));
            else GatedGeluBackward.Launch(device, dWide, dLinear.Fp32, dWide, saved.Hidden.Slice(0, count), saved.Linear.Slice(0, count));
            InputGradient(p.Norm, dHidden, w.Input, n, d, ff);
            InputGradient(p.Norm, dLinear, w.Linear, n, d, ff, accumulate: true);
        }
        else
        {
            if (bf16) ReluBackward.Launch(device, dHidden.Bf16, dWide, saved.HiddenBf16.Slice(0, count));
            else ReluBackward.Launch(device, dWide, dWide, saved.Hidden.Slice(0, count));
            InputGradient(p.Norm, dHidden, w.Input, n, d, ff);
        }
    }

    /// <summary>
    /// output [rows·length, d] = input + o(attention(rmsnorm(input))) over one stack's own positions, with T5's relative
    /// bias, saving the norm's rstd and the attention's q, k, v, output and logsumexp.
    /// </summary>
    private void SelfAttention(T5DevicePlan p, DeviceSpan<float> output, DeviceSpan<float> input, DeviceSpan<float> rstd, DeviceSpan<float> normWeight,
        T5DevicePlan.Attention a, T5DeviceWeights.Attention w, int length, DeviceSpan<float> bias, DeviceSpan<int> buckets, DeviceSpan<int> keyLengths, bool causal)
    {
        int n = rows * length, d = config.Embedding, att = config.AttentionSize;
        var normed = RmsNormForGemm(p.Norm, rstd, input, normWeight, n, d, (float)config.LayerNormEpsilon);
        ProjectTo(a.Fp32.QueryKeyValue, a.Bf16.QueryKeyValue, normed, w.QueryKeyValue, n, 3 * att);
        Attend(a, bias, buckets, keyLengths, length, length, causal);
        Residual(output, input, AttentionOutput(a), w.Output, n, att, d);
    }

    /// <summary>
    /// y [n, width] = x · Wᵀ into <paramref name="fp32"/>, or in bf16 precision into <paramref name="bf16Output"/> (each fp32
    /// sum rounded once, as PyTorch's bf16 autocast keeps q, k and v).
    /// </summary>
    private void ProjectTo(DeviceSpan<float> fp32, DeviceSpan<ushort> bf16Output, GemmInput x, DeviceMatrix weight, int n, int width)
    {
        if (bf16) ProjectToBf16(bf16Output, x, weight, n, config.Embedding, width);
        else Project(fp32, x, weight, n, config.Embedding, width);
    }

    /// <summary>The attention output as the o projection's operand: in bf16 precision the bf16 tensor attention wrote, read as it is.</summary>
    private GemmInput AttentionOutput(T5DevicePlan.Attention a) => bf16 ? GemmInput.OfBf16(a.OutputBf16) : a.Output;

    /// <summary><paramref name="dResidual"/> [rows·length, d]: d(loss)/d(output) of <see cref="SelfAttention"/> in, d(loss)/d(input) out.</summary>
    private void SelfAttentionBackward(T5DevicePlan p, DeviceSpan<float> dResidual, DeviceSpan<float> input, DeviceSpan<float> rstd, DeviceSpan<float> normWeight,
        T5DevicePlan.Attention a, T5DeviceWeights.Attention w, int length, DeviceSpan<float> bias, DeviceSpan<int> buckets, DeviceSpan<int> keyLengths, bool causal)
    {
        int n = rows * length, d = config.Embedding, att = config.AttentionSize;
        InputGradient(p.GradientAttention, ResidualGradientOperand(dResidual, (long)n * d), w.Output, n, att, d);
        var dProjections = AttendBackward(p, a, bias, buckets, keyLengths, length, length, causal);
        InputGradient(p.Norm, dProjections.QueryKeyValue, w.QueryKeyValue, n, d, 3 * att);
        RmsNormBackwardForGemm(dResidual, p.Norm, input, normWeight, rstd, n, d);
    }

    /// <summary>
    /// a.Output = softmax(q·kᵀ + bias)·v per head (no 1/√d: T5 folds it into its weights), saving the logsumexp; in bf16
    /// precision q, k, v and the output are bf16 (scores, softmax and sums fp32 inside the kernel).
    /// </summary>
    private void Attend(T5DevicePlan.Attention a, DeviceSpan<float> bias, DeviceSpan<int> buckets, DeviceSpan<int> keyLengths, int queryLength, int keyLength, bool causal)
    {
        int att = config.AttentionSize;
        if (bf16)
        {
            var x = a.Bf16;
            AttentionForward.Launch(device, a.OutputBf16, att, a.LogSumExp, x.Queries, x.QueryStride, x.Keys, x.KeyValueStride, x.Values, x.KeyValueStride,
                bias, buckets, keyLengths, rows, queryLength, keyLength, config.Heads, config.HeadSize, causal, scale: 1f);
        }
        else
        {
            var x = a.Fp32;
            AttentionForward.Launch(device, a.Output, att, a.LogSumExp, x.Queries, x.QueryStride, x.Keys, x.KeyValueStride, x.Values, x.KeyValueStride,
                bias, buckets, keyLengths, rows, queryLength, keyLength, config.Heads, config.HeadSize, causal, scale: 1f);
        }
    }

    /// <summary>d(q, k, v) from p.GradientAttention = d(loss)/d(a.Output), into p.GradientProjections laid out as a's q, k and v.</summary>
    private T5DevicePlan.Projections<float> AttendBackward(T5DevicePlan p, T5DevicePlan.Attention a, DeviceSpan<float> bias, DeviceSpan<int> buckets,
        DeviceSpan<int> keyLengths, int queryLength, int keyLength, bool causal)
    {
        int att = config.AttentionSize;
        var g = T5DevicePlan.Projections<float>.Over(p.GradientProjections, a.Fp32.IsSelf, (long)rows * queryLength, (long)rows * keyLength, att);
        if (bf16)
        {
            var x = a.Bf16;
            AttentionBackward.Launch(device, g.Queries, g.QueryStride, g.Keys, g.KeyValueStride, g.Values, g.KeyValueStride, p.GradientAttention, att,
                x.Queries, x.QueryStride, x.Keys, x.KeyValueStride, x.Values, x.KeyValueStride, a.OutputBf16, att, a.LogSumExp, p.AttentionScratch,
                bias, buckets, keyLengths, rows, queryLength, keyLength, config.Heads, config.HeadSize, causal, scale: 1f);
        }
        else
        {
            var x = a.Fp32;
            AttentionBackward.Launch(device, g.Queries, g.QueryStride, g.Keys, g.KeyValueStride, g.Values, g.KeyValueStride, p.GradientAttention, att,
                x.Queries, x.QueryStride, x.Keys, x.KeyValueStride, x.Values, x.KeyValueStride, a.Output, att, a.LogSumExp, p.AttentionScratch,
                bias, buckets, keyLengths, rows, queryLength, keyLength, config.Heads, config.HeadSize, causal, scale: 1f);
        }
        return g;
    }
}

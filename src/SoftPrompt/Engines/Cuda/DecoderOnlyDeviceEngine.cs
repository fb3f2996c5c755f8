using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>The shape of the last forward pass: batch rows, sequence length (longest prompt + tokens), rows of the shared layout.</summary>
internal readonly record struct DecoderStep(int Rows, int Sequence, int Shared)
{
    public int Full => Rows * Sequence;
}

/// <summary>
/// The skeleton of the decoder-only device engines (GPT-2, Llama): batch upload, embeddings, the blocks, the final norm and
/// the LM head forward; the same in reverse into the prompt gradient; logits and decoding. Each prompt's positions are
/// computed once per batch however many rows use it (<see cref="SharedPromptRows"/>): a family's block runs its
/// position-wise ops and GEMMs on the shared rows and its attention on each row's full sequence gathered from them.
/// Generation runs on a KV cache (<see cref="OpenDecoding"/>, <see cref="DeviceDecodingSession"/>): a family's cached
/// block runs only the step's new rows against the cached keys and values.
/// IDeviceEngine is re-implemented here so that the decoding members below replace IPromptEngine's default ones.
/// </summary>
public abstract class DecoderOnlyDeviceEngine : DeviceEngine, IDeviceEngine
{
    private protected DecoderStep step;

    private protected DecoderOnlyDeviceEngine(IComputeDevice device, bool ownsDevice, int embeddingSize, int vocabSize, int maxPositions, int layers, bool bf16)
        : base(device, ownsDevice, embeddingSize, vocabSize, maxPositions, bf16) => Layers = layers;

    private protected int Layers { get; }
    /// <summary>A plan that fits <paramref name="batch"/> with the loaded prompts (the current one, or a grown one).</summary>
    private protected abstract DecoderDevicePlan PlanFor(TokenBatch batch);
    /// <summary>The plan of the last forward pass.</summary>
    private protected abstract DecoderDevicePlan CurrentPlan { get; }

    private protected sealed override DeviceSpan<ushort> ResidualGradientBf16 => CurrentPlan.ResidualGradientBf16;
    /// <summary>dResidual [shared rows, d] as a GEMM operand (<see cref="DeviceEngine.ResidualGradientOperand"/>).</summary>
    private protected GemmInput ResidualGradientOperand(DeviceSpan<float> dResidual) => ResidualGradientOperand(dResidual, (long)step.Shared * EmbeddingSize);
    private protected sealed override DeviceLanguageModelHead Head => CurrentPlan.Head;
    private protected abstract DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>[sequence, d] added at each position by the embedding kernel (GPT-2's wpe; zeros where positions rotate q and k instead).</summary>
    private protected abstract DeviceSpan<float> PositionTable { get; }
    /// <summary>lm_head [V, d], or the tied token embedding (bf16 in bf16 precision).</summary>
    private protected abstract DeviceMatrix HeadWeight { get; }

    /// <summary>
    /// Block <paramref name="layer"/>: BlockInput(layer) → BlockInput(layer + 1), saving what its reverse pass reads. When
    /// <paramref name="recomputing"/> (inside the reverse pass of a plan that <see cref="DecoderDevicePlan.Recomputes"/>) it
    /// may stop once the saved tensors are refilled: its output is already stored as the next block's input.
    /// </summary>
    private protected abstract void BlockForward(int layer, bool recomputing);
    /// <summary>FinalNorm = norm(Final).</summary>
    private protected abstract void FinalNormForward();
    /// <summary><paramref name="dResidual"/> += d(loss)/d(Final), from Gradient = d(loss)/d(FinalNorm).</summary>
    private protected abstract void FinalNormBackward(DeviceSpan<float> dResidual);
    /// <summary><paramref name="dResidual"/>: d(loss)/d(block output) in, d(loss)/d(block input) out.</summary>
    private protected abstract void BlockBackward(int layer, DeviceSpan<float> dResidual);
    /// <summary>Before the blocks' reverse passes (clearing what they accumulate into).</summary>
    private protected virtual void BeginBackward() { }

    private protected sealed override float RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, VocabSize, MaxPositions, requireTargets: languageModelHead);
        var p = PlanFor(batch);
        var inputs = p.Inputs;
        inputs.Upload(batch, p.Head);
        var shared = inputs.SharedRows;
        int rows = batch.Rows, d = EmbeddingSize;
        step = new DecoderStep(rows, batch.SequenceLength, shared.Shared);

        // The embeddings of the full layout, then each shared row's (a prompt position from the first row using it).
        EmbeddingForward.Launch(device, p.FullEmbeddings.Slice(0, (long)step.Full * d), inputs.Tokens.Slice(0, rows * batch.TokenLength), state.Prompts,
            inputs.PromptIndex.Slice(0, rows), state.Offsets, TokenEmbedding, PositionTable, rows, step.Sequence, batch.TokenLength, d);
        GatherRows.Launch(device, p.BlockInput(0), p.FullEmbeddings, shared.SharedToFull, step.Shared, d);
        for (int l = 0; l < Layers; l++) BlockForward(l, recomputing: false);
        FinalNormForward();
        if (!languageModelHead) return 0f;
        float loss = p.Head.Run(p.FinalNorm, HeadWeight, 1f, p.TargetGradients, lossGradientWeight, withGradient, countGreedyMatches);
        // Rows with empty inputs predict their first target from their prompt's last position: such targets meet on one shared row.
        if (withGradient) GatherSumRows.Launch(device, p.Gradient, p.TargetGradients, shared.TargetStarts, shared.TargetIndex, step.Shared, d, accumulate: false);
        return loss;
    }

    private protected sealed override void RunBackward(bool accumulate)
    {
        var p = CurrentPlan;
        var shared = p.Inputs.SharedRows;
        int d = EmbeddingSize;
        var dResidual = p.GradientNext.Slice(0, (long)step.Shared * d);
        device.Zero(dResidual);
        FinalNormBackward(dResidual);
        BeginBackward();
        for (int l = Layers - 1; l >= 0; l--)
        {
            if (p.Recomputes) BlockForward(l, recomputing: true);
            BlockBackward(l, dResidual);
        }
        // The shared prompt rows are the prompts' own embedding rows: their gradient is dPrompt (0 for prompts the batch does not use).
        GatherSumRows.Launch(device, state.Gradient, dResidual, shared.PromptStarts, shared.PromptIndex, state.Layout!.TotalLength, d, accumulate);
    }

    /// <summary>Full logits [B, T, V] at every position (tests; training never materialises these).</summary>
    /// <summary>Whether the current plan recomputes each block in the reverse pass (<see cref="Recomputation"/>).</summary>
    public sealed override bool RecomputesActivations => CurrentPlan.Recomputes;

    public void Logits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        var p = CurrentPlan;
        int n = step.Full, d = EmbeddingSize, vocab = VocabSize;
        if (logits.Length < (long)n * vocab) throw new ArgumentException($"Logits buffer needs {(long)n * vocab} values.");
        using var all = device.Allocate<float>((long)n * vocab);
        GatherRows.Launch(device, p.FullEmbeddings, p.FinalNorm, p.Inputs.SharedRows.FullToShared, n, d);
        DeviceLanguageModelHead.AllRowLogits(device, p.FullEmbeddings, HeadWeight, 1f, n, d, vocab, all.Span);
        device.CopyToHost(all.Span, logits[..(n * vocab)]);
    }

    public void NextTokenLogits(TokenBatch batch, Span<float> logits)
    {
        if (logits.Length < (long)batch.Rows * VocabSize) throw new ArgumentException($"Logits buffer holds {logits.Length} values, {batch.Rows} rows × {VocabSize} need {(long)batch.Rows * VocabSize}.");
        LastPositionsForward(batch).NextTokens(CurrentPlan.FinalNorm, HeadWeight, 1f, batch.Rows, logits, default);
    }

    public void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        LastPositionsForward(batch).NextTokens(CurrentPlan.FinalNorm, HeadWeight, 1f, batch.Rows, default, tokens);
    }

    /// <summary>A forward pass without the LM head, whose head then reads each row's last position.</summary>
    private DeviceLanguageModelHead LastPositionsForward(TokenBatch batch)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        var p = CurrentPlan;
        p.Inputs.SetLastPositions(batch, p.Head);
        return p.Head;
    }

    /// <summary>A KV-cached decoding session over the prompts loaded now (<see cref="DeviceDecodingSession"/>).</summary>
    public IDecodingSession OpenDecoding(int slots, int tokensPerSlot) => new DeviceDecodingSession(this, slots, tokensPerSlot);

    /// <summary>The widths a cached step of this family needs.</summary>
    internal abstract DecodingShape DecodingShape { get; }
    /// <summary>[positions, d] added at each row's own position by the step embedding (GPT-2's wpe), or empty (RoPE models).</summary>
    private protected abstract DeviceSpan<float> DecodingPositionTable { get; }
    /// <summary>The decoding plan whose step runs now: its bf16 operand buffer serves the step's GEMMs (null outside a step).</summary>
    private protected DeviceDecodingPlan? runningDecoding;

    /// <summary>Before the blocks of a cached step of <paramref name="rows"/> rows (RoPE: each row's cos/sin at its position).</summary>
    private protected virtual void BeginCachedRows(DeviceDecodingPlan p, int rows) { }
    /// <summary>
    /// Block <paramref name="layer"/> on a step's rows: <see cref="DeviceDecodingPlan.Hidden"/> in and out, the rows' keys and
    /// values appended to the layer's cache, attention over each row's key range split as given.
    /// </summary>
    private protected abstract void CachedBlock(DeviceDecodingPlan p, int layer, int rows, int splitSize, int splits);
    /// <summary><see cref="DeviceDecodingPlan.Norm"/> = final norm(<see cref="DeviceDecodingPlan.Hidden"/>) over a step's rows.</summary>
    internal abstract void CachedFinalNorm(DeviceDecodingPlan p, int rows);

    /// <summary>Embeds a step's rows (indices uploaded) and runs them through every block, filling the caches.</summary>
    internal void RunCachedRows(DeviceDecodingPlan p, int rows, int longestKeyLength)
    {
        var ix = p.Indices(rows);
        DecodeEmbedding.Launch(device, p.Hidden, ix.Tokens, ix.PromptRows, ix.Positions, state.Prompts, TokenEmbedding, DecodingPositionTable, rows, EmbeddingSize);
        var (splitSize, splits) = p.AttentionSplits(rows, longestKeyLength);
        runningDecoding = p;
        try
        {
            BeginCachedRows(p, rows);
            for (int l = 0; l < Layers; l++) CachedBlock(p, l, rows, splitSize, splits);
        }
        finally { runningDecoding = null; }
    }

    /// <summary>After <see cref="CachedFinalNorm"/> and the head's targets: the logits (or, with <paramref name="tokens"/>, the argmax) of the targeted rows.</summary>
    internal void CachedNextTokens(DeviceDecodingPlan p, int rows, Span<float> logits, Span<int> tokens)
        => p.Head.NextTokens(p.Norm, HeadWeight, 1f, rows, logits, tokens);
}

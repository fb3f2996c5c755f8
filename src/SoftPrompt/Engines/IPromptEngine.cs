namespace SoftPrompt.Engines;

/// <summary>
/// A frozen language model with trainable soft prompts: forward to the loss and an input-gradient-only
/// reverse pass that yields dLoss/dPrompt. Prompts, their gradient and optimizer state live where the
/// engine computes (host memory for the CPU engine, device memory for the CUDA engine); the host reads
/// them only when it asks.
/// </summary>
public interface IPromptEngine : IDisposable
{
    /// <summary>"cpu", "cuda", "cuda-emulated".</summary>
    string DeviceName { get; }
    int EmbeddingSize { get; }
    int VocabSize { get; }
    int MaxPositions { get; }
    int PromptCount { get; }
    /// <summary>The loaded prompts' lengths and packing (null before <see cref="LoadPrompts(ReadOnlySpan{float}, PromptLayout)"/>); build batches with it.</summary>
    PromptLayout? PromptLayout { get; }

    /// <summary>
    /// Sets the prompts: <paramref name="values"/> is [ΣP_k, EmbeddingSize] row-major, prompt k's P_k vectors at rows
    /// [layout.Offset(k), layout.Offset(k) + P_k). Prompts may differ in length. Resets optimizer state.
    /// </summary>
    void LoadPrompts(ReadOnlySpan<float> values, PromptLayout layout);
    /// <summary>Sets <paramref name="promptCount"/> prompts of one length: <paramref name="values"/> is [promptCount, promptLength, EmbeddingSize].</summary>
    void LoadPrompts(ReadOnlySpan<float> values, int promptCount, int promptLength) => LoadPrompts(values, PromptLayout.Uniform(promptCount, promptLength));
    /// <summary>Copies the prompts out: [ΣP_k, EmbeddingSize], packed as loaded.</summary>
    void ReadPrompts(Span<float> destination);

    /// <summary>Mean cross-entropy over the batch's targets; no gradient.</summary>
    float Forward(TokenBatch batch);
    /// <summary>
    /// Sum of the log-probabilities of each row's targets (rank classification scores), written to
    /// <paramref name="rowLogLikelihood"/>[0..batch.Rows); when <paramref name="rowGreedyMatches"/> is not
    /// empty, also how many of each row's targets are the argmax of their teacher-forced logits (a row whose
    /// count equals its target length is exactly what greedy decoding would produce).
    /// </summary>
    void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default);
    /// <summary>
    /// Logits of the token that follows each row: <paramref name="logits"/> [batch.Rows, VocabSize] taken at the row's
    /// last position (its prompt length P_b + Lengths[b] − 1). Rows stay right-padded, so rows of unequal length decode together
    /// without left padding shifting their positions. The batch's targets are ignored (rows may have none).
    /// </summary>
    void NextTokenLogits(TokenBatch batch, Span<float> logits) =>
        throw new NotSupportedException($"{GetType().Name} cannot decode yet; use rank classification or teacher-forced exact match.");

    /// <summary>
    /// Greedy decoding's step: the argmax of <see cref="NextTokenLogits"/> for each row (the first among equal maxima),
    /// into <paramref name="tokens"/>[0..batch.Rows). Device engines decide it on the device and copy one int per row.
    /// </summary>
    void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        var logits = new float[batch.Rows * VocabSize];
        NextTokenLogits(batch, logits);
        for (int r = 0; r < batch.Rows; r++) tokens[r] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(logits.AsSpan(r * VocabSize, VocabSize));
    }

    /// <summary>
    /// A KV-cached decoding session of <paramref name="slots"/> sequences of up to <paramref name="tokensPerSlot"/> input and
    /// generated tokens each, over the prompts loaded now; null when this engine decodes only by re-running each sequence
    /// (<see cref="NextTokens"/>).
    /// </summary>
    IDecodingSession? OpenDecoding(int slots, int tokensPerSlot) => null;

    /// <summary>
    /// Forward and reverse pass. The prompt gradient is d(mean loss of this batch)/dPrompt × <paramref name="gradientWeight"/>;
    /// it replaces the previous gradient, or is added to it when <paramref name="accumulate"/>. Returns the batch's mean
    /// loss. Exact gradient accumulation over micro-batches weights each by its target count and scales the optimizer
    /// step by 1/(total targets), so the update equals one big batch's whatever the micro-batches' sizes.
    /// </summary>
    float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f);
    /// <summary>Copies dLoss/dPrompt out: [ΣP_k, EmbeddingSize].</summary>
    void ReadPromptGradient(Span<float> destination);
    /// <summary>
    /// Replaces dLoss/dPrompt: [ΣP_k, EmbeddingSize], packed as <see cref="ReadPromptGradient"/> reads it. Data-parallel
    /// training reads each process's gradient, sums them over the processes and writes the sum back before the optimizer step.
    /// </summary>
    void WritePromptGradient(ReadOnlySpan<float> source);

    /// <summary>
    /// Applies one optimizer update (1-based <paramref name="step"/>) to the prompts with the current gradient
    /// scaled by <paramref name="gradientScale"/> (e.g. 1/k after accumulating k micro-batches). Each prompt is updated
    /// as if it trained alone: gradient clipping applies to its own norm, Adafactor factors its own [P_k, d] matrix.
    /// Queued on the engine's device without waiting for it.
    /// </summary>
    void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale = 1f);
    /// <summary>Length of the optimizer state: two buffers of ΣP_k·EmbeddingSize (AdamW's m and v; Adafactor's factored rows [ΣP_k] and columns [K·d] at their starts).</summary>
    int OptimizerStateLength { get; }
    /// <summary>Copies the optimizer state out (for checkpoints that resume exactly).</summary>
    void ReadOptimizerState(Span<float> destination);
    /// <summary>Restores optimizer state saved by <see cref="ReadOptimizerState"/> (after <see cref="LoadPrompts"/>).</summary>
    void LoadOptimizerState(ReadOnlySpan<float> source);

    /// <summary>Global L2 norm of the (scaled, unclipped) gradient used by the last optimizer step, over all prompts; reading it waits for the device.</summary>
    float LastGradientNorm { get; }
    /// <summary>Each prompt's L2 norm of the (scaled, unclipped) gradient of the last optimizer step: [PromptCount]. Waits for the device.</summary>
    void ReadGradientNorms(Span<float> destination);
}

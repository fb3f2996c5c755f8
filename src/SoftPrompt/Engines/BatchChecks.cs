namespace SoftPrompt.Engines;

/// <summary>The checks every engine makes on a batch before it touches the model, in one place.</summary>
internal static class BatchChecks
{
    /// <summary>
    /// Prompts loaded, rows (and targets, when required) present, every row's prompt loaded and laid out in the batch
    /// with the engine's length for it, and every token id inside the vocabulary.
    /// </summary>
    public static void Common(TokenBatch batch, PromptLayout? prompts, int vocabSize, bool requireTargets)
    {
        if (prompts is null) throw new InvalidOperationException("Load prompts before running a batch.");
        if (batch.Rows == 0 || (requireTargets && batch.TargetCount == 0)) throw new ArgumentException("The batch has no rows or no targets.");
        for (int b = 0; b < batch.Rows; b++)
        {
            int k = batch.PromptIndex[b];
            if ((uint)k >= (uint)prompts.Count)
                throw new ArgumentException($"Batch row {b} uses prompt {k}, only {prompts.Count} are loaded.");
            if (batch.RowPromptLength(b) != prompts.Length(k))
                throw new ArgumentException($"Batch row {b} was laid out for prompt {k} of length {batch.RowPromptLength(b)}, the engine's prompt {k} has length {prompts.Length(k)}; build the batch with the engine's PromptLayout.");
            foreach (int id in batch.RowTokens(b))
                if ((uint)id >= (uint)vocabSize)
                    throw new ArgumentException($"Batch row {b} holds token id {id}, outside the vocabulary [0, {vocabSize}).");
        }
    }

    /// <summary>ScoreRows' buffers: one log-likelihood per batch row, and one match count per row when counted.</summary>
    public static void ScoreBuffers(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches)
    {
        if (rowLogLikelihood.Length < batch.Rows) throw new ArgumentException($"Score buffer holds {rowLogLikelihood.Length} rows, the batch has {batch.Rows}.");
        if (!rowGreedyMatches.IsEmpty && rowGreedyMatches.Length < batch.Rows) throw new ArgumentException($"Match buffer holds {rowGreedyMatches.Length} rows, the batch has {batch.Rows}.");
    }

    /// <summary>Decoder-only: the whole sequence (prompt region + tokens) must fit the model's positions.</summary>
    public static void DecoderOnly(TokenBatch batch, PromptLayout? prompts, int vocabSize, int maxPositions, bool requireTargets)
    {
        Common(batch, prompts, vocabSize, requireTargets);
        if (batch.SequenceLength > maxPositions)
            throw new ArgumentException($"Sequence of {batch.SequenceLength} positions (prompt {batch.LongestPrompt} + {batch.TokenLength} tokens) exceeds the model's limit of {maxPositions} positions.");
    }

    /// <summary>
    /// A row's input and target token counts, recovered from the batch layout: its first target sits in Targets at
    /// P_b + inputLength − 1 (TokenBatch's decoder-only convention); the rest of the row's tokens are targets.
    /// </summary>
    public static (int Input, int Target) RowLengths(TokenBatch batch, int row)
    {
        var targets = batch.Targets.AsSpan(row * batch.SequenceLength, batch.SequenceLength);
        int first = targets.IndexOfAnyExcept(TokenBatch.Ignore);
        if (first < 0) throw new ArgumentException($"Batch row {row} has no target tokens; every row needs at least one.");
        int input = first - batch.RowPromptLength(row) + 1;
        return (input, batch.Lengths[row] - input);
    }

    /// <summary>Encoder-decoder: checks the batch and returns its encoder (longest prompt + input of a row) and decoder (longest target) lengths.</summary>
    public static (int Encoder, int Decoder) EncoderDecoder(TokenBatch batch, PromptLayout? prompts, int vocabSize, int maxPositions)
    {
        Common(batch, prompts, vocabSize, requireTargets: true);
        int encoder = 0, longestTarget = 0;
        for (int b = 0; b < batch.Rows; b++)
        {
            var (input, target) = RowLengths(batch, b);
            encoder = Math.Max(encoder, batch.RowPromptLength(b) + input);
            longestTarget = Math.Max(longestTarget, target);
        }
        if (encoder == 0) throw new ArgumentException("The encoder would have no positions: give the rows a prompt or input tokens.");
        if (encoder > maxPositions || longestTarget > maxPositions)
            throw new ArgumentException($"An encoder input of {encoder} positions (prompt + input tokens) or {longestTarget} target tokens exceeds the model's limit of {maxPositions} positions.");
        return (encoder, longestTarget);
    }
}

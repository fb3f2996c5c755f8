namespace SoftPrompt.Engines;

/// <summary>The checks every engine makes on a batch before it touches the model, in one place.</summary>
internal static class BatchChecks
{
    /// <summary>
    /// Prompts loaded and of the batch's length, rows (and targets, when required) present, every row's prompt loaded
    /// and every token id inside the vocabulary.
    /// </summary>
    public static void Common(TokenBatch batch, int promptCount, int promptLength, int vocabSize, bool requireTargets)
    {
        if (promptCount == 0) throw new InvalidOperationException("Load prompts before running a batch.");
        if (batch.PromptLength != promptLength)
            throw new ArgumentException($"The batch was laid out for prompt length {batch.PromptLength}, the engine holds prompts of length {promptLength}.");
        if (batch.Rows == 0 || (requireTargets && batch.TargetCount == 0)) throw new ArgumentException("The batch has no rows or no targets.");
        for (int b = 0; b < batch.Rows; b++)
        {
            if ((uint)batch.PromptIndex[b] >= (uint)promptCount)
                throw new ArgumentException($"Batch row {b} uses prompt {batch.PromptIndex[b]}, only {promptCount} are loaded.");
            foreach (int id in batch.RowTokens(b))
                if ((uint)id >= (uint)vocabSize)
                    throw new ArgumentException($"Batch row {b} holds token id {id}, outside the vocabulary [0, {vocabSize}).");
        }
    }

    /// <summary>Decoder-only: the whole sequence (prompt + tokens) must fit the model's positions.</summary>
    public static void DecoderOnly(TokenBatch batch, int promptCount, int vocabSize, int maxPositions, bool requireTargets)
    {
        Common(batch, promptCount, batch.PromptLength, vocabSize, requireTargets);
        if (batch.SequenceLength > maxPositions)
            throw new ArgumentException($"Sequence of {batch.SequenceLength} positions (prompt {batch.PromptLength} + {batch.TokenLength} tokens) exceeds the model's n_positions {maxPositions}.");
    }

    /// <summary>
    /// A row's input and target token counts, recovered from the batch layout: its first target sits in Targets at
    /// P + inputLength − 1 (TokenBatch's decoder-only convention); the rest of the row's tokens are targets.
    /// </summary>
    public static (int Input, int Target) RowLengths(TokenBatch batch, int row)
    {
        var targets = batch.Targets.AsSpan(row * batch.SequenceLength, batch.SequenceLength);
        int first = targets.IndexOfAnyExcept(TokenBatch.Ignore);
        if (first < 0) throw new ArgumentException($"Batch row {row} has no target tokens; every row needs at least one.");
        int input = first - batch.PromptLength + 1;
        return (input, batch.Lengths[row] - input);
    }

    /// <summary>Encoder-decoder: checks the batch and returns its encoder (prompt + longest input) and decoder (longest target) lengths.</summary>
    public static (int Encoder, int Decoder) EncoderDecoder(TokenBatch batch, int promptCount, int promptLength, int vocabSize, int maxPositions)
    {
        Common(batch, promptCount, promptLength, vocabSize, requireTargets: true);
        int longestInput = 0, longestTarget = 0;
        for (int b = 0; b < batch.Rows; b++)
        {
            var (input, target) = RowLengths(batch, b);
            longestInput = Math.Max(longestInput, input);
            longestTarget = Math.Max(longestTarget, target);
        }
        int encoder = promptLength + longestInput;
        if (encoder == 0) throw new ArgumentException("The encoder would have no positions: give the rows a prompt or input tokens.");
        if (encoder > maxPositions || longestTarget > maxPositions)
            throw new ArgumentException($"Encoder input of {encoder} positions (prompt {promptLength} + {longestInput} tokens) or {longestTarget} target tokens exceeds the model's limit of {maxPositions} positions.");
        return (encoder, longestTarget);
    }
}

namespace SoftPrompt.Engines;

/// <summary>
/// One batch of token rows laid out for prompt tuning. Row b is the sequence
/// [prompt PromptIndex[b] (PromptLength vectors), Tokens[b, 0 .. Lengths[b])], right-padded to
/// SequenceLength = PromptLength + TokenCapacity positions. Targets[b, t] is the token id the model
/// must predict at position t (from the hidden state at t), or <see cref="Ignore"/>.
/// Buffers are sized once for a capacity and refilled, so a training loop allocates nothing per step.
/// An encoder-decoder engine (T5) reads the same layout differently: prompt + input tokens are the encoder input,
/// the targets the decoder's; it recovers each row's input length from where its first target sits.
/// </summary>
public sealed class TokenBatch
{
    public const int Ignore = -1;

    public TokenBatch(int rowCapacity, int tokenCapacity, int promptLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowCapacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokenCapacity);
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        RowCapacity = rowCapacity;
        TokenCapacity = tokenCapacity;
        PromptLength = promptLength;
        Tokens = new int[rowCapacity * tokenCapacity];
        Targets = new int[rowCapacity * (promptLength + tokenCapacity)];
        Lengths = new int[rowCapacity];
        PromptIndex = new int[rowCapacity];
    }

    public int RowCapacity { get; }
    public int TokenCapacity { get; }
    public int PromptLength { get; }
    /// <summary>Rows in use (≤ RowCapacity).</summary>
    public int Rows { get; private set; }
    /// <summary>Longest token row in use (≤ TokenCapacity); the batch's sequences are PromptLength + TokenLength long.</summary>
    public int TokenLength { get; private set; }
    public int SequenceLength => PromptLength + TokenLength;
    /// <summary>Number of non-ignored targets; the loss is the mean over these.</summary>
    public int TargetCount { get; private set; }

    /// <summary>[Rows, TokenLength] row-major (stride TokenLength), padding = 0.</summary>
    public int[] Tokens { get; }
    /// <summary>[Rows, SequenceLength] row-major (stride SequenceLength).</summary>
    public int[] Targets { get; }
    public int[] Lengths { get; }
    public int[] PromptIndex { get; }

    public ReadOnlySpan<int> RowTokens(int row) => Tokens.AsSpan(row * TokenLength, Lengths[row]);

    /// <summary>Clears the batch and sets its token length (the longest row that will be added).</summary>
    public void Reset(int tokenLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokenLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokenLength, TokenCapacity);
        Rows = 0;
        TargetCount = 0;
        TokenLength = tokenLength;
    }

    /// <summary>Appends a row to decode from: it reads <paramref name="tokens"/> after its prompt and has no targets.</summary>
    public void AddDecodingRow(ReadOnlySpan<int> tokens, int promptIndex = 0)
    {
        if (Rows == RowCapacity) throw new InvalidOperationException($"Batch is full ({RowCapacity} rows).");
        if (tokens.Length > TokenLength) throw new ArgumentException($"Row of {tokens.Length} tokens exceeds the batch's token length {TokenLength}.");
        if (PromptLength == 0 && tokens.IsEmpty) throw new ArgumentException("Without a prompt a row needs at least one token to continue.");
        int row = Rows++;
        var stored = Tokens.AsSpan(row * TokenLength, TokenLength);
        stored.Clear();
        tokens.CopyTo(stored);
        Targets.AsSpan(row * SequenceLength, SequenceLength).Fill(Ignore);
        Lengths[row] = tokens.Length;
        PromptIndex[row] = promptIndex;
    }

    /// <summary>
    /// Appends a row that reads <paramref name="input"/> then <paramref name="target"/>; the loss covers the
    /// prediction of every target token from the position before it (the last prompt vector predicts the
    /// first target when the input is empty).
    /// </summary>
    public void AddRow(ReadOnlySpan<int> input, ReadOnlySpan<int> target, int promptIndex = 0)
    {
        if (Rows == RowCapacity) throw new InvalidOperationException($"Batch is full ({RowCapacity} rows).");
        int length = input.Length + target.Length;
        if (length > TokenLength) throw new ArgumentException($"Row of {length} tokens exceeds the batch's token length {TokenLength}.");
        if (target.IsEmpty) throw new ArgumentException("A row needs at least one target token.");
        if (PromptLength == 0 && input.IsEmpty) throw new ArgumentException("Without a prompt a row needs at least one input token to predict its first target from.");
        int row = Rows++;
        var tokens = Tokens.AsSpan(row * TokenLength, TokenLength);
        tokens.Clear();
        input.CopyTo(tokens);
        target.CopyTo(tokens[input.Length..]);
        var targets = Targets.AsSpan(row * SequenceLength, SequenceLength);
        targets.Fill(Ignore);
        int first = PromptLength + input.Length - 1;
        for (int i = 0; i < target.Length; i++) targets[first + i] = target[i];
        Lengths[row] = length;
        PromptIndex[row] = promptIndex;
        TargetCount += target.Length;
    }
}

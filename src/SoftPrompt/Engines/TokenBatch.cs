namespace SoftPrompt.Engines;

/// <summary>
/// One batch of token rows laid out for prompt tuning. Row b is the sequence
/// [prompt PromptIndex[b] (its P_b vectors), Tokens[b, 0 .. Lengths[b])], right-padded to
/// SequenceLength = LongestPrompt + TokenLength positions; prompts may differ in length from row to row, so row b's
/// tokens start at position P_b. Targets[b, t] is the token id the model must predict at position t (from the hidden
/// state at t), or <see cref="Ignore"/>.
/// Buffers are sized once for a capacity and refilled, so a training loop allocates nothing per step.
/// An encoder-decoder engine (T5) reads the same layout differently: prompt + input tokens are the encoder input,
/// the targets the decoder's; it recovers each row's input length from where its first target sits.
/// </summary>
public sealed class TokenBatch
{
    public const int Ignore = -1;

    private readonly PromptLayout? prompts;

    /// <summary>A batch whose prompts all have length <paramref name="promptLength"/>, whatever their index.</summary>
    public TokenBatch(int rowCapacity, int tokenCapacity, int promptLength) : this(rowCapacity, tokenCapacity, promptLength, null) { }

    /// <summary>A batch for the prompts of <paramref name="prompts"/>: a row with prompt k starts its tokens at position Length(k).</summary>
    public TokenBatch(int rowCapacity, int tokenCapacity, PromptLayout prompts) : this(rowCapacity, tokenCapacity, prompts.MaxLength, prompts) { }

    private TokenBatch(int rowCapacity, int tokenCapacity, int longestPrompt, PromptLayout? prompts)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowCapacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokenCapacity);
        ArgumentOutOfRangeException.ThrowIfNegative(longestPrompt);
        RowCapacity = rowCapacity;
        TokenCapacity = tokenCapacity;
        LongestPrompt = longestPrompt;
        this.prompts = prompts;
        CheckSize(rowCapacity, tokenCapacity, longestPrompt);
        Tokens = new int[rowCapacity * tokenCapacity];
        Targets = new int[rowCapacity * (longestPrompt + tokenCapacity)];
        Lengths = new int[rowCapacity];
        PromptIndex = new int[rowCapacity];
    }

    /// <summary>
    /// Refuses a batch whose id arrays cannot exist (more than 2^31 cells) or would not fit the machine's free memory,
    /// naming both: the batch is the first thing a run sizes from `TrainOptions.BatchSize`, so this is where an absurd
    /// value is caught before anything else is allocated.
    /// </summary>
    internal static void CheckSize(long rows, int tokens, int longestPrompt)
    {
        long cells = rows * (longestPrompt + tokens);
        long bytes = sizeof(int) * (cells + rows * tokens + 2L * rows);
        long free = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - GC.GetTotalMemory(forceFullCollection: false);
        if (cells > Array.MaxLength || bytes > free)
            throw new InvalidOperationException($"A batch of {rows} rows × {longestPrompt + tokens} positions needs {bytes / (double)(1L << 30):F1} GiB for its token ids alone " +
                $"({(cells > Array.MaxLength ? "more cells than an array can hold" : $"{Math.Max(free, 0) / (double)(1L << 30):F1} GiB free")}); use a smaller `TrainOptions.BatchSize`.");
    }

    public int RowCapacity { get; }
    public int TokenCapacity { get; }
    /// <summary>The longest prompt a row may have: the prompt region in front of the tokens is this long.</summary>
    public int LongestPrompt { get; }
    /// <summary>Rows in use (≤ RowCapacity).</summary>
    public int Rows { get; private set; }
    /// <summary>Longest token row in use (≤ TokenCapacity); the batch's sequences are LongestPrompt + TokenLength long.</summary>
    public int TokenLength { get; private set; }
    public int SequenceLength => LongestPrompt + TokenLength;
    /// <summary>Number of non-ignored targets; the loss is the mean over these.</summary>
    public int TargetCount { get; private set; }

    /// <summary>[Rows, TokenLength] row-major (stride TokenLength), padding = 0.</summary>
    public int[] Tokens { get; }
    /// <summary>[Rows, SequenceLength] row-major (stride SequenceLength).</summary>
    public int[] Targets { get; }
    public int[] Lengths { get; }
    public int[] PromptIndex { get; }

    public ReadOnlySpan<int> RowTokens(int row) => Tokens.AsSpan(row * TokenLength, Lengths[row]);

    /// <summary>Length of prompt <paramref name="prompt"/> in this batch's layout.</summary>
    public int PromptLengthOf(int prompt)
    {
        if (prompts is null) return LongestPrompt;
        if ((uint)prompt >= (uint)prompts.Count)
            throw new ArgumentOutOfRangeException(nameof(prompt), $"Prompt {prompt} is not in the batch's layout of {prompts.Count} prompts.");
        return prompts.Length(prompt);
    }

    /// <summary>Length of row <paramref name="row"/>'s prompt: its tokens start at this position.</summary>
    public int RowPromptLength(int row) => PromptLengthOf(PromptIndex[row]);

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
        if (PromptLengthOf(promptIndex) == 0 && tokens.IsEmpty) throw new ArgumentException("Without a prompt a row needs at least one token to continue.");
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
        int promptLength = PromptLengthOf(promptIndex);
        if (promptLength == 0 && input.IsEmpty) throw new ArgumentException("Without a prompt a row needs at least one input token to predict its first target from.");
        int row = Rows++;
        var tokens = Tokens.AsSpan(row * TokenLength, TokenLength);
        tokens.Clear();
        input.CopyTo(tokens);
        target.CopyTo(tokens[input.Length..]);
        var targets = Targets.AsSpan(row * SequenceLength, SequenceLength);
        targets.Fill(Ignore);
        int first = promptLength + input.Length - 1;
        for (int i = 0; i < target.Length; i++) targets[first + i] = target[i];
        Lengths[row] = length;
        PromptIndex[row] = promptIndex;
        TargetCount += target.Length;
    }
}

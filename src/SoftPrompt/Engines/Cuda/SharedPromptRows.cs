namespace SoftPrompt.Engines;

/// <summary>
/// Where a decoder-only batch's positions live when each prompt's positions are computed once. The prompt comes first
/// under a causal mask, so its hidden states depend on the prompt alone: every batch row that uses prompt k would
/// recompute the same P_k positions. The <em>shared</em> layout holds the positions of each prompt the batch uses once
/// (in prompt order), then every row's T token positions: Shared = ΣP_k(used) + B·T rows instead of B·S. Position-wise
/// work (norms, GEMMs, activations) runs on the shared rows; attention gathers each row's full [S] sequence from them and
/// scatters its result back. The maps below are built on the host per batch into buffers sized once (no allocation).
/// </summary>
internal sealed class SharedPromptRows
{
    private readonly int[] firstRowOf;
    private readonly int[] sharedOffsetOf;
    private readonly int[] targetShared;
    private readonly int[] nextEntry;

    /// <param name="fullCapacity">The most positions (B·S) a batch may have.</param>
    public SharedPromptRows(int rowCapacity, int fullCapacity, PromptLayout layout)
    {
        int full = fullCapacity;
        Layout = layout;
        FullToShared = new int[full];
        FullToSharedOrZero = new int[full];
        SharedToFull = new int[full];
        ReduceStarts = new int[full + 1];
        ReduceIndex = new int[full];
        TargetStarts = new int[full + 1];
        TargetIndex = new int[full];
        PromptStarts = new int[layout.TotalLength + 1];
        PromptIndex = new int[layout.TotalLength];
        targetShared = new int[full];
        nextEntry = new int[full];
        firstRowOf = new int[layout.Count];
        sharedOffsetOf = new int[layout.Count];
        RowCapacity = rowCapacity;
        FullCapacity = fullCapacity;
    }

    public PromptLayout Layout { get; }
    public int RowCapacity { get; }
    public int FullCapacity { get; }
    /// <summary>Rows of the shared layout for the last batch (≤ B·S).</summary>
    public int Shared { get; private set; }
    /// <summary>B·S of the last batch.</summary>
    public int Full { get; private set; }
    /// <summary>Prompt positions at the front of the shared layout (ΣP_k over the prompts the batch uses).</summary>
    public int PromptRows { get; private set; }

    /// <summary>[B·S]: the shared row holding full position (b, s). Padding after a short prompt's row reads the row's last token.</summary>
    public int[] FullToShared { get; }
    /// <summary>[B·S]: as <see cref="FullToShared"/>, but a prompt position of any row other than the first using that prompt reads row <see cref="Shared"/> (a zero row): the shared position's gradient enters the attention once.</summary>
    public int[] FullToSharedOrZero { get; }
    /// <summary>[Shared]: the full position each shared row is read back from (a prompt position from the first row using it).</summary>
    public int[] SharedToFull { get; }
    /// <summary>CSR [Shared + 1] / [B·S]: shared row r's gradient = Σ of the full positions that read it, in increasing position.</summary>
    public int[] ReduceStarts { get; }
    public int[] ReduceIndex { get; }
    /// <summary>CSR [Shared + 1] / [targets]: shared row r's head gradient = Σ of the target entries predicted from it (two rows with empty inputs share their prompt's last position).</summary>
    public int[] TargetStarts { get; }
    public int[] TargetIndex { get; }
    /// <summary>CSR [ΣP_k + 1] / [·]: prompt row (k, p) of the packed prompts ← shared row of (k, p) when the batch uses k, else nothing (0).</summary>
    public int[] PromptStarts { get; }
    public int[] PromptIndex { get; }

    /// <summary>Fills the maps for <paramref name="batch"/>; <paramref name="targetPositions"/> are the full positions of its targets, in order.</summary>
    public void Build(TokenBatch batch, ReadOnlySpan<int> targetPositions)
    {
        int rows = batch.Rows, sequence = batch.SequenceLength, tokens = batch.TokenLength;
        if (rows > RowCapacity || rows * sequence > FullCapacity) throw new InvalidOperationException("The batch outgrew the shared-row maps; size them for its capacity.");
        Array.Fill(firstRowOf, -1);
        for (int b = 0; b < rows; b++)
            if (firstRowOf[batch.PromptIndex[b]] < 0) firstRowOf[batch.PromptIndex[b]] = b;
        int promptRows = 0;
        for (int k = 0; k < Layout.Count; k++)
        {
            sharedOffsetOf[k] = firstRowOf[k] < 0 ? -1 : promptRows;
            if (firstRowOf[k] >= 0) promptRows += Layout.Length(k);
        }
        PromptRows = promptRows;
        Shared = promptRows + rows * tokens;
        Full = rows * sequence;

        for (int k = 0, row = 0; k < Layout.Count; k++)
        {
            PromptStarts[Layout.Offset(k)] = row;
            for (int p = 0; p < Layout.Length(k); p++)
            {
                if (sharedOffsetOf[k] >= 0)
                {
                    PromptIndex[row++] = sharedOffsetOf[k] + p;
                    SharedToFull[sharedOffsetOf[k] + p] = firstRowOf[k] * sequence + p;
                }
                PromptStarts[Layout.Offset(k) + p + 1] = row;
            }
        }
        for (int b = 0; b < rows; b++)
        {
            int k = batch.PromptIndex[b], length = Layout.Length(k), tokenBase = promptRows + b * tokens;
            for (int s = 0; s < sequence; s++)
            {
                int position = b * sequence + s;
                int shared = s < length ? sharedOffsetOf[k] + s : tokenBase + Math.Min(s - length, tokens - 1);
                FullToShared[position] = shared;
                FullToSharedOrZero[position] = s < length ? (firstRowOf[k] == b ? shared : Shared) : s - length < tokens ? shared : Shared;
                if (s >= length && s - length < tokens) SharedToFull[shared] = position;
            }
        }
        CountingSort(FullToShared.AsSpan(0, Full), ReduceStarts, ReduceIndex, skipPadding: batch);
        for (int j = 0; j < targetPositions.Length; j++) targetShared[j] = FullToShared[targetPositions[j]];
        CountingSort(targetShared.AsSpan(0, targetPositions.Length), TargetStarts, TargetIndex, skipPadding: null);
    }

    /// <summary>
    /// starts/index: for each shared row, the entries j with keys[j] = row, in increasing j. With a batch, the padding
    /// positions after a shorter prompt's tokens (which alias a token row) are left out: they carry no gradient.
    /// </summary>
    private void CountingSort(ReadOnlySpan<int> keys, int[] starts, int[] index, TokenBatch? skipPadding)
    {
        int rows = Shared;
        Array.Clear(starts, 0, rows + 1);
        for (int j = 0; j < keys.Length; j++)
            if (!IsPadding(j)) starts[keys[j] + 1]++;
        for (int r = 0; r < rows; r++) starts[r + 1] += starts[r];
        var next = nextEntry.AsSpan(0, rows);
        starts.AsSpan(0, rows).CopyTo(next);
        for (int j = 0; j < keys.Length; j++)
            if (!IsPadding(j)) index[next[keys[j]]++] = j;

        bool IsPadding(int position)
        {
            if (skipPadding is null) return false;
            int b = position / skipPadding.SequenceLength, s = position - b * skipPadding.SequenceLength;
            int length = Layout.Length(skipPadding.PromptIndex[b]);
            return s >= length && s - length >= skipPadding.TokenLength;
        }
    }
}

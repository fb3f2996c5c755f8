using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// The LM head of a CPU engine, run at target positions only and in chunks of rows so [targets, V] logits never exist
/// at once: logits = s·h·Wᵀ (W [V, d]: the tied embedding or lm_head; s = 1, or T5 v1.0's d^-0.5), fused cross-entropy,
/// and d(h) written back at each target's position. The engine lists the targets (<see cref="Add"/>) after its forward
/// pass; buffers are sized once for a capacity.
/// </summary>
internal sealed class CpuLanguageModelHead<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly int width, vocab;

    public CpuLanguageModelHead(int positions, int width, int vocab)
    {
        this.width = width;
        this.vocab = vocab;
        LogitRows = Math.Clamp((1 << 22) / vocab, 16, Math.Max(16, positions));
        TargetPositions = new int[positions];
        TargetIds = new int[positions];
        TargetRow = new int[positions];
        RowLoss = new T[positions];
        TargetArgmaxMatches = new bool[positions];
        TargetHidden = new T[LogitRows * width];
        Logits = new T[LogitRows * vocab];
    }

    public int LogitRows { get; }
    public int Count { get; private set; }
    /// <summary>Where each target's hidden state sits (row of the engine's hidden-state matrix), its id and its batch row.</summary>
    public int[] TargetPositions { get; }
    public int[] TargetIds { get; }
    public int[] TargetRow { get; }
    public T[] RowLoss { get; }
    public bool[] TargetArgmaxMatches { get; }
    /// <summary>Hidden states gathered at one chunk of targets [LogitRows, d], and their logits [LogitRows, V].</summary>
    public T[] TargetHidden { get; }
    public T[] Logits { get; }

    public void Clear() => Count = 0;

    /// <summary>Lists a target: the id predicted from hidden row <paramref name="position"/> of batch row <paramref name="row"/>.</summary>
    public void Add(int position, int id, int row)
    {
        if ((uint)id >= (uint)vocab) throw new ArgumentException($"Batch row {row} has target id {id}, outside the vocabulary [0, {vocab}).");
        TargetPositions[Count] = position;
        TargetIds[Count] = id;
        TargetRow[Count] = row;
        Count++;
    }

    /// <summary>
    /// Mean cross-entropy of the listed targets from <paramref name="hidden"/> [·, d]. When <paramref name="gradient"/> is not
    /// empty it receives d(weight·mean loss)/d(hidden) at the target rows (other rows are cleared first).
    /// </summary>
    public T Run(ReadOnlySpan<T> hidden, ReadOnlySpan<T> head, T headScale, Span<T> gradient, T gradientWeight, bool countGreedyMatches)
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Head);
        int d = width, count = Count;
        bool withGradient = !gradient.IsEmpty;
        if (withGradient) gradient.Clear();
        T scale = withGradient ? gradientWeight / T.CreateChecked(count) : T.Zero;
        for (int start = 0; start < count; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, count - start);
            for (int r = 0; r < chunk; r++)
                hidden.Slice(TargetPositions[start + r] * d, d).CopyTo(TargetHidden.AsSpan(r * d, d));
            CpuGemm.Gemm(false, true, chunk, vocab, d, headScale, TargetHidden, d, head, d, T.Zero, Logits, vocab);
            if (countGreedyMatches)
                for (int r = 0; r < chunk; r++)
                    TargetArgmaxMatches[start + r] = TensorPrimitives.IndexOfMax<T>(Logits.AsSpan(r * vocab, vocab)) == TargetIds[start + r];
            CrossEntropyOps.ForwardBackward<T>(Logits, RowLoss.AsSpan(start, chunk), TargetIds.AsSpan(start, chunk), chunk, vocab, scale);
            if (withGradient)
            {
                // logits = s·h·Wᵀ, so dh = s·dlogits·W.
                CpuGemm.Gemm(false, false, chunk, d, vocab, headScale, Logits, vocab, head, d, T.Zero, TargetHidden, d);
                for (int r = 0; r < chunk; r++)
                    TargetHidden.AsSpan(r * d, d).CopyTo(gradient.Slice(TargetPositions[start + r] * d, d));
            }
        }
        T total = T.Zero;
        for (int r = 0; r < count; r++) total += RowLoss[r];
        return total / T.CreateChecked(count);
    }

    /// <summary>After <see cref="Run"/>: each row's summed target log-likelihood (and greedy matches, when counted).</summary>
    public void ScoreRows(int rows, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches)
    {
        rowLogLikelihood[..rows].Clear();
        bool matches = !rowGreedyMatches.IsEmpty;
        if (matches) rowGreedyMatches[..rows].Clear();
        for (int r = 0; r < Count; r++)
        {
            rowLogLikelihood[TargetRow[r]] -= float.CreateTruncating(RowLoss[r]);
            if (matches && TargetArgmaxMatches[r]) rowGreedyMatches[TargetRow[r]]++;
        }
    }

    /// <summary>
    /// Decoding: logits [batch.Rows, V] at each row's last position (P_b + Lengths[b] − 1) of a decoder-only batch whose
    /// hidden states <paramref name="hidden"/> are laid out [rows, SequenceLength, d]. Clears the target list.
    /// </summary>
    public void NextTokenLogits(TokenBatch batch, ReadOnlySpan<T> hidden, ReadOnlySpan<T> head, Span<float> logits) => LastPositions(batch, hidden, head, logits, default);

    /// <summary>Decoding: each row's argmax at its last position (the first among equal maxima). Clears the target list.</summary>
    public void NextTokens(TokenBatch batch, ReadOnlySpan<T> hidden, ReadOnlySpan<T> head, Span<int> tokens)
    {
        if (tokens.Length < batch.Rows) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, the batch has {batch.Rows}.");
        LastPositions(batch, hidden, head, default, tokens);
    }

    /// <summary>Each listed position's argmax of s·h·Wᵀ (the first among equal maxima), into <paramref name="tokens"/>.</summary>
    public void ArgmaxAt(ReadOnlySpan<T> hidden, ReadOnlySpan<T> head, T headScale, ReadOnlySpan<int> positions, Span<int> tokens)
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Head);
        int d = width, rows = positions.Length;
        for (int start = 0; start < rows; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, rows - start);
            for (int r = 0; r < chunk; r++) hidden.Slice(positions[start + r] * d, d).CopyTo(TargetHidden.AsSpan(r * d, d));
            CpuGemm.Gemm(false, true, chunk, vocab, d, headScale, TargetHidden, d, head, d, T.Zero, Logits, vocab);
            for (int r = 0; r < chunk; r++) tokens[start + r] = TensorPrimitives.IndexOfMax<T>(Logits.AsSpan(r * vocab, vocab));
        }
    }

    private void LastPositions(TokenBatch batch, ReadOnlySpan<T> hidden, ReadOnlySpan<T> head, Span<float> logits, Span<int> tokens)
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Head);
        int d = width, rows = batch.Rows;
        if (tokens.IsEmpty && logits.Length < (long)rows * vocab) throw new ArgumentException($"Logits buffer holds {logits.Length} values, {rows} rows × {vocab} need {(long)rows * vocab}.");
        Count = 0;
        for (int start = 0; start < rows; start += LogitRows)
        {
            int chunk = Math.Min(LogitRows, rows - start);
            for (int r = 0; r < chunk; r++)
            {
                int row = start + r, position = row * batch.SequenceLength + batch.RowPromptLength(row) + batch.Lengths[row] - 1;
                hidden.Slice(position * d, d).CopyTo(TargetHidden.AsSpan(r * d, d));
            }
            CpuGemm.Gemm(false, true, chunk, vocab, d, T.One, TargetHidden, d, head, d, T.Zero, Logits, vocab);
            if (tokens.IsEmpty) CpuPromptState<T>.Convert(Logits.AsSpan(0, chunk * vocab), logits.Slice(start * vocab, chunk * vocab));
            else
                for (int r = 0; r < chunk; r++) tokens[start + r] = TensorPrimitives.IndexOfMax<T>(Logits.AsSpan(r * vocab, vocab));
        }
    }
}

using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>Fused softmax cross-entropy over the vocabulary, on the target rows only.</summary>
public static unsafe class CrossEntropyOps
{
    /// <summary>
    /// logits [R, V] (one row per target token); targets [R]; rowLoss [R] = logsumexp(logits_r) − logits_r[target_r].
    /// The logits are overwritten: when <paramref name="gradientScale"/> is non-zero with
    /// dLoss/dlogits = (softmax(logits_r) − onehot(target_r)) · gradientScale (1/targetCount for a mean loss),
    /// so loss and gradient take one pass per row and no second [R, V] buffer; otherwise with exp(logits_r − max_r).
    /// </summary>
    public static void ForwardBackward<T>(Span<T> logits, Span<T> rowLoss, ReadOnlySpan<int> targets, int rows, int vocab, T gradientScale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Head);
        if (logits.Length < (long)rows * vocab || rowLoss.Length < rows || targets.Length < rows)
            throw new ArgumentException($"Cross-entropy: buffers too short for {rows}×{vocab}.");
        fixed (T* pl = logits) fixed (T* pr = rowLoss) fixed (int* pt = targets)
        {
            var job = new Job<T> { Logits = pl, RowLoss = pr, Targets = pt, Rows = rows, V = vocab, Scale = gradientScale };
            job.Chunks = CpuParallel.ChunkCount(rows, Math.Max(1, 65536 / vocab));
            CpuParallel.For(job.Chunks, &Chunk<T>, &job);
        }
    }

    private struct Job<T> where T : unmanaged
    {
        public T* Logits, RowLoss;
        public int* Targets;
        public int Rows, V, Chunks;
        public T Scale;
    }

    private static void Chunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(j.Rows, j.Chunks, chunk);
        for (int r = start; r < end; r++)
        {
            var row = new Span<T>(j.Logits + (long)r * j.V, j.V);
            int target = j.Targets[r];
            T max = TensorPrimitives.Max<T>(row);
            T targetLogit = row[target];
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            T total = TensorPrimitives.Sum<T>(row);
            j.RowLoss[r] = max + T.Log(total) - targetLogit;
            if (j.Scale == T.Zero) continue;
            TensorPrimitives.Multiply(row, j.Scale / total, row);
            row[target] -= j.Scale;
        }
    }
}

using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>
/// Row-major GEMM on the CPU: C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C.
/// op(A) = A (stored [m, lda]) or Aᵀ (A stored [k, lda]); likewise B. OpenBLAS when present,
/// else a managed row-parallel fallback. beta = 0 ignores what C held (BLAS semantics).
/// </summary>
public static unsafe class CpuGemm
{
    public static bool UsesOpenBlas => OpenBlas.IsAvailable;

    public static void Gemm<T>(bool transA, bool transB, int m, int n, int k, T alpha,
        ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb, T beta, Span<T> c, int ldc)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (m == 0 || n == 0) return;
        using var timing = CpuOpTimes.Measure(CpuOp.Gemm);
        Require(a, transA ? k : m, transA ? m : k, lda, "A");
        Require(b, transB ? n : k, transB ? k : n, ldb, "B");
        Require(c, m, n, ldc, "C");
        fixed (T* pa = a) fixed (T* pb = b) fixed (T* pc = c)
        {
            if (OpenBlas.IsAvailable && k > 0)
            {
                if (typeof(T) == typeof(float))
                {
                    OpenBlas.Sgemm(transA, transB, m, n, k, float.CreateTruncating(alpha), (float*)pa, lda, (float*)pb, ldb, float.CreateTruncating(beta), (float*)pc, ldc);
                    return;
                }
                if (typeof(T) == typeof(double))
                {
                    OpenBlas.Dgemm(transA, transB, m, n, k, double.CreateTruncating(alpha), (double*)pa, lda, (double*)pb, ldb, double.CreateTruncating(beta), (double*)pc, ldc);
                    return;
                }
            }
            var job = new Job<T> { TransA = transA, TransB = transB, M = m, N = n, K = k, Alpha = alpha, Beta = beta, A = pa, Lda = lda, B = pb, Ldb = ldb, C = pc, Ldc = ldc };
            job.Chunks = CpuParallel.ChunkCount(m, Math.Max(1, 32768 / Math.Max(1, n * Math.Max(1, k) / 64)));
            CpuParallel.For(job.Chunks, &RunChunk<T>, &job);
        }
    }

    private static void Require<T>(ReadOnlySpan<T> span, int rows, int cols, int ld, string name)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"GEMM operand {name}: leading dimension {ld} < {cols} columns.");
        long needed = (long)(rows - 1) * ld + cols;
        if (span.Length < needed) throw new ArgumentException($"GEMM operand {name}: {span.Length} elements, needs {needed} ({rows}×{cols}, ld {ld}).");
    }

    private struct Job<T> where T : unmanaged
    {
        public bool TransA, TransB;
        public int M, N, K, Lda, Ldb, Ldc, Chunks;
        public T Alpha, Beta;
        public T* A, B, C;
    }

    private static void RunChunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var job = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(job.M, job.Chunks, chunk);
        for (int i = start; i < end; i++)
        {
            var cRow = new Span<T>(job.C + (long)i * job.Ldc, job.N);
            if (job.Beta == T.Zero) cRow.Clear();
            else if (job.Beta != T.One) TensorPrimitives.Multiply(cRow, job.Beta, cRow);
            if (job.K == 0) continue;
            if (!job.TransB)
            {
                for (int p = 0; p < job.K; p++)
                {
                    T aip = job.TransA ? job.A[(long)p * job.Lda + i] : job.A[(long)i * job.Lda + p];
                    if (aip == T.Zero) continue;
                    var bRow = new ReadOnlySpan<T>(job.B + (long)p * job.Ldb, job.N);
                    TensorPrimitives.MultiplyAdd(bRow, job.Alpha * aip, cRow, cRow);
                }
            }
            else if (!job.TransA)
            {
                var aRow = new ReadOnlySpan<T>(job.A + (long)i * job.Lda, job.K);
                for (int j = 0; j < job.N; j++)
                    cRow[j] += job.Alpha * TensorPrimitives.Dot(aRow, new ReadOnlySpan<T>(job.B + (long)j * job.Ldb, job.K));
            }
            else
            {
                for (int j = 0; j < job.N; j++)
                {
                    T sum = T.Zero;
                    for (int p = 0; p < job.K; p++) sum += job.A[(long)p * job.Lda + i] * job.B[(long)j * job.Ldb + p];
                    cRow[j] += job.Alpha * sum;
                }
            }
        }
    }
}

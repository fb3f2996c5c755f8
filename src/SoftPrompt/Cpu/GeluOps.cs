using System.Numerics;

namespace SoftPrompt.Cpu;

/// <summary>GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
public static unsafe class GeluOps
{
    /// <summary>y, x [N]. y may alias x.</summary>
    public static void Forward<T>(Span<T> y, ReadOnlySpan<T> x) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (y.Length < x.Length) throw new ArgumentException("GELU: output shorter than input.");
        fixed (T* py = y) fixed (T* px = x)
        {
            var job = new Job<T> { Y = py, X = px, N = x.Length };
            job.Chunks = CpuParallel.ChunkCount(x.Length, 16384);
            CpuParallel.For(job.Chunks, &ForwardChunk<T>, &job);
        }
    }

    /// <summary>dx = dy · gelu'(x); dx, dy, x [N]. dx may alias dy.</summary>
    public static void Backward<T>(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> x) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        if (dx.Length < x.Length || dy.Length < x.Length) throw new ArgumentException("GELU backward: buffers shorter than input.");
        fixed (T* pdx = dx) fixed (T* pdy = dy) fixed (T* px = x)
        {
            var job = new Job<T> { Y = pdx, Dy = pdy, X = px, N = x.Length };
            job.Chunks = CpuParallel.ChunkCount(x.Length, 16384);
            CpuParallel.For(job.Chunks, &BackwardChunk<T>, &job);
        }
    }

    private struct Job<T> where T : unmanaged
    {
        public T* Y, Dy, X;
        public int N, Chunks;
    }

    private static T Scale<T>() where T : IBinaryFloatingPointIeee754<T> => T.Sqrt(T.CreateChecked(2.0) / T.Pi);
    private static T Cubic<T>() where T : IBinaryFloatingPointIeee754<T> => T.CreateChecked(0.044715);

    private static void ForwardChunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(j.N, j.Chunks, chunk);
        T half = T.CreateChecked(0.5), k = Scale<T>(), a = Cubic<T>();
        for (int i = start; i < end; i++)
        {
            T x = j.X[i];
            j.Y[i] = half * x * (T.One + T.Tanh(k * (x + a * x * x * x)));
        }
    }

    private static void BackwardChunk<T>(void* state, int chunk) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var j = ref *(Job<T>*)state;
        var (start, end) = CpuParallel.Chunk(j.N, j.Chunks, chunk);
        T half = T.CreateChecked(0.5), k = Scale<T>(), a = Cubic<T>(), three = T.CreateChecked(3);
        for (int i = start; i < end; i++)
        {
            T x = j.X[i];
            T th = T.Tanh(k * (x + a * x * x * x));
            T derivative = half * (T.One + th) + half * x * (T.One - th * th) * k * (T.One + three * a * x * x);
            j.Y[i] = j.Dy[i] * derivative;
        }
    }
}

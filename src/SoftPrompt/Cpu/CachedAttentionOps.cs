using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>
/// Where each packed token of a KV-cached step sits: its position, and the cache rows of its sequence's keys and values.
/// Position i of token j's sequence lives in cache row <see cref="Row"/>(j, i): the sequence's prompt (shared by every
/// sequence with that prompt, computed once) below PromptLength[j], the sequence's own rows from there on.
/// </summary>
public sealed class CachedPositions
{
    public CachedPositions(int capacity) => Grow(capacity);

    /// <summary>Tokens in use.</summary>
    public int Count { get; set; }
    public int Capacity => Positions.Length;
    public int[] Positions { get; private set; } = [];
    public int[] PromptStart { get; private set; } = [];
    public int[] PromptLength { get; private set; } = [];
    /// <summary>Row of the sequence's own position 0 (its own rows start at position PromptLength, at OwnStart + PromptLength).</summary>
    public int[] OwnStart { get; private set; } = [];

    public int Row(int token, int position) =>
        position < PromptLength[token] ? PromptStart[token] + position : OwnStart[token] + position;

    /// <summary>Makes room for <paramref name="capacity"/> tokens (keeps nothing: callers refill every step).</summary>
    public void Grow(int capacity)
    {
        if (capacity <= Capacity) return;
        Positions = new int[capacity];
        PromptStart = new int[capacity];
        PromptLength = new int[capacity];
        OwnStart = new int[capacity];
    }
}

/// <summary>
/// Attention of packed query tokens against a key/value cache (KV-cached decoding and prefill): token j at position p
/// attends causally to positions 0..p of its own sequence, read from the cache rows <see cref="CachedPositions.Row"/>
/// names, so one step mixes sequences of different prompts, lengths and new-token counts. Grouped-query heads read their
/// kv head in place (query head h uses kv head h / (heads / keyValueHeads)). Same arithmetic as
/// <see cref="BiasedAttentionOps.Forward{T}"/> per query row.
/// </summary>
public static unsafe class CachedAttentionOps
{
    /// <summary>Writes token j's key and value rows (from <paramref name="key"/> and <paramref name="value"/>, row stride <paramref name="stride"/>) into the cache row of its own position.</summary>
    public static void Store<T>(Span<T> keyCache, Span<T> valueCache, ReadOnlySpan<T> key, ReadOnlySpan<T> value, int stride, int width, CachedPositions tokens)
        where T : unmanaged
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        for (int j = 0; j < tokens.Count; j++)
        {
            long row = (long)tokens.Row(j, tokens.Positions[j]) * width;
            key.Slice(j * stride, width).CopyTo(keyCache.Slice((int)row, width));
            value.Slice(j * stride, width).CopyTo(valueCache.Slice((int)row, width));
        }
    }

    /// <summary>
    /// output [N, heads·hs] (row stride heads·hs) from q (row stride <paramref name="queryStride"/>, heads·hs used) and the
    /// caches [rows, keyValueHeads·hs]: out_j = Σ_i softmax_i(scale·q_j·k_i + bias) v_i over i ≤ Positions[j], where bias is
    /// <paramref name="distanceBias"/>[h, Positions[j] − i] ([heads, <paramref name="distances"/>], T5's decoder relative
    /// bias by distance back) when given, else 0.
    /// </summary>
    public static void Forward<T>(Span<T> output, ReadOnlySpan<T> q, int queryStride, ReadOnlySpan<T> keyCache, ReadOnlySpan<T> valueCache,
        CachedPositions tokens, int heads, int keyValueHeads, int headSize, T scale, ReadOnlySpan<T> distanceBias = default, int distances = 0)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        int n = tokens.Count, width = heads * headSize;
        if (keyValueHeads < 1 || heads % keyValueHeads != 0) throw new ArgumentException($"Cached attention: {heads} heads are not a multiple of {keyValueHeads} kv heads.");
        if (output.Length < (long)n * width || q.Length < (long)(n - 1) * queryStride + width)
            throw new ArgumentException($"Cached attention: buffers too short for {n} tokens × {heads} heads × {headSize}.");
        if (!distanceBias.IsEmpty)
        {
            if (distanceBias.Length < (long)heads * distances) throw new ArgumentException($"Cached attention: a distance bias of {distanceBias.Length} values for {heads} heads × {distances} distances.");
            for (int j = 0; j < n; j++)
                if (tokens.Positions[j] >= distances) throw new ArgumentException($"Cached attention: position {tokens.Positions[j]} is beyond the {distances} distances the bias covers.");
        }
        fixed (T* po = output) fixed (T* pq = q) fixed (T* pk = keyCache) fixed (T* pv = valueCache) fixed (T* pb = distanceBias)
        fixed (int* positions = tokens.Positions) fixed (int* promptStart = tokens.PromptStart) fixed (int* promptLength = tokens.PromptLength) fixed (int* ownStart = tokens.OwnStart)
        {
            var job = new Job<T>
            {
                Out = po, Q = pq, K = pk, V = pv, QueryStride = queryStride, H = heads, Group = heads / keyValueHeads, Hs = headSize, Scale = scale,
                Positions = positions, PromptStart = promptStart, PromptLength = promptLength, OwnStart = ownStart,
                CacheRows = keyCache.Length / (keyValueHeads * headSize), DistanceBias = distanceBias.IsEmpty ? null : pb, Distances = distances,
            };
            CpuParallel.For(n * heads, &TokenHead<T>, &job);
        }
    }

    private struct Job<T> where T : unmanaged
    {
        public T* Out, Q, K, V, DistanceBias;
        public int* Positions, PromptStart, PromptLength, OwnStart;
        public int QueryStride, H, Group, Hs, CacheRows, Distances;
        public T Scale;
    }

    private static void TokenHead<T>(void* state, int item) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        ref var job = ref *(Job<T>*)state;
        int token = item / job.H, h = item % job.H, hs = job.Hs, keys = job.Positions[token] + 1;
        int kvWidth = job.H / job.Group * hs, kvOffset = h / job.Group * hs;
        Span<T> scores = keys <= 2048 ? stackalloc T[keys] : new T[keys];
        var q = new ReadOnlySpan<T>(job.Q + (long)token * job.QueryStride + h * hs, hs);
        for (int i = 0; i < keys; i++)
            scores[i] = job.Scale * TensorPrimitives.Dot(q, new ReadOnlySpan<T>(job.K + RowOf(ref job, token, i) * kvWidth + kvOffset, hs));
        if (job.DistanceBias is not null)
            for (int i = 0; i < keys; i++) scores[i] += job.DistanceBias[(long)h * job.Distances + keys - 1 - i];
        T max = TensorPrimitives.Max<T>(scores);
        TensorPrimitives.Subtract(scores, max, scores);
        TensorPrimitives.Exp(scores, scores);
        T inverse = T.One / TensorPrimitives.Sum<T>(scores);
        var o = new Span<T>(job.Out + (long)token * job.H * hs + h * hs, hs);
        o.Clear();
        for (int i = 0; i < keys; i++)
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<T>(job.V + RowOf(ref job, token, i) * kvWidth + kvOffset, hs), scores[i] * inverse, o, o);
    }

    private static long RowOf<T>(ref Job<T> job, int token, int position) where T : unmanaged
    {
        long row = position < job.PromptLength[token] ? job.PromptStart[token] + position : job.OwnStart[token] + position;
        if ((ulong)row >= (ulong)job.CacheRows) throw new InvalidOperationException($"Cached attention: position {position} maps to cache row {row}, outside the {job.CacheRows} rows.");
        return row;
    }
}

using System.Numerics;
using System.Numerics.Tensors;
using SoftPrompt.Cpu;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on the CPU T5 engine: each input is encoded once, every decoder layer's cross-attention keys and
/// values of it are projected once, and the decoder runs only its new positions against its own cached self-attention
/// keys and values (relative bias by distance back, as the full pass's unidirectional buckets give it).
/// </summary>
public sealed partial class CpuT5Engine<T>
{
    public IDecodingSession OpenDecoding(int slots, int tokensPerSlot) => new CpuT5DecodingSession<T>(this, slots, tokensPerSlot);

    internal T5Config Config => config;

    /// <summary>[heads, distances]: the decoder self-attention bias of a key <c>distance</c> positions before its query.</summary>
    internal T[] DecoderDistanceBias(int distances)
    {
        var bias = new T[config.Heads * distances];
        for (int distance = 0; distance < distances; distance++)
        {
            int bucket = T5RelativeBuckets.Bucket(-distance, bidirectional: false, config.RelativeBuckets, config.RelativeMaxDistance);
            for (int h = 0; h < config.Heads; h++) bias[h * distances + distance] = weights.DecoderRelativeBias[bucket * config.Heads + h];
        }
        return bias;
    }

    /// <summary>
    /// Encodes the batch's rows (their targets are ignored) and writes every decoder layer's cross-attention keys and values
    /// of row r at cache rows <paramref name="slotOfRow"/>[r]·EncoderCapacity onward; <paramref name="encoderLengths"/>[slot]
    /// receives the row's encoder length.
    /// </summary>
    internal void Encode(TokenBatch batch, ReadOnlySpan<int> slotOfRow, T5DecodingCache<T> cache, Span<int> encoderLengths)
    {
        var a = Encode(batch);
        int d = config.Embedding, att = config.AttentionSize, ne = rows * encoderLength;
        for (int r = 0; r < rows; r++)
        {
            if (a.EncoderLengths[r] > cache.EncoderCapacity) throw new ArgumentException($"An encoder input of {a.EncoderLengths[r]} positions does not fit the session's {cache.EncoderCapacity}.");
            encoderLengths[slotOfRow[r]] = a.EncoderLengths[r];
        }
        // One GEMM per layer and projection over every row (the training pass's buffers are free here), then each row's
        // positions to its slot's cache rows.
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var w = weights.DecoderLayers[l].CrossAttention;
            Cache(w.Key, cache.CrossKeys[l], slotOfRow);
            Cache(w.Value, cache.CrossValues[l], slotOfRow);
        }

        void Cache(T[] weight, T[] destination, ReadOnlySpan<int> slots)
        {
            Project(a.GradientKey, a.EncoderOutput, weight, ne, d, att);
            for (int r = 0; r < rows; r++)
                a.GradientKey.AsSpan(r * encoderLength * att, a.EncoderLengths[r] * att).CopyTo(destination.AsSpan(slots[r] * cache.EncoderCapacity * att));
        }
    }

    /// <summary>Runs the scratch's packed decoder tokens through every decoder layer and leaves logits [N, V] of the tokens that follow them.</summary>
    internal void DecodeCached(T5DecodingScratch<T> s, T5DecodingCache<T> cache, Span<T> logits)
    {
        int n = s.SelfTokens.Count, d = config.Embedding, att = config.AttentionSize, heads = config.Heads, hs = config.HeadSize;
        T eps = T.CreateChecked(config.LayerNormEpsilon);
        for (int j = 0; j < n; j++) TokenRow(s.Ids[j]).CopyTo(s.Residual.AsSpan(j * d, d));
        for (int l = 0; l < config.DecoderLayers; l++)
        {
            var w = weights.DecoderLayers[l];
            RmsNormOps.Forward<T>(s.Norm, s.Rstd, s.Residual, w.SelfAttentionNormWeight, n, d, eps);
            Project(s.Query, s.Norm, w.SelfAttention.Query, n, d, att);
            Project(s.Key, s.Norm, w.SelfAttention.Key, n, d, att);
            Project(s.Value, s.Norm, w.SelfAttention.Value, n, d, att);
            CachedAttentionOps.Store<T>(cache.SelfKeys[l], cache.SelfValues[l], s.Key, s.Value, att, att, s.SelfTokens);
            CachedAttentionOps.Forward<T>(s.Attention, s.Query, att, cache.SelfKeys[l], cache.SelfValues[l], s.SelfTokens, heads, heads, hs, T.One,
                cache.DistanceBias, cache.TokensPerSlot);
            AddProjection(s, s.Attention, w.SelfAttention.Output, n, att);

            RmsNormOps.Forward<T>(s.Norm, s.Rstd, s.Residual, w.CrossAttentionNormWeight, n, d, eps);
            Project(s.Query, s.Norm, w.CrossAttention.Query, n, d, att);
            CachedAttentionOps.Forward<T>(s.Attention, s.Query, att, cache.CrossKeys[l], cache.CrossValues[l], s.CrossTokens, heads, heads, hs, T.One);
            AddProjection(s, s.Attention, w.CrossAttention.Output, n, att);

            FeedForwardSublayer(s.Norm, s.Wide, s.Projection, s.Residual, s.Rstd, s.Residual, w.FeedForwardNormWeight, w.FeedForward, s.Hidden, s.Linear, n);
        }
        RmsNormOps.Forward<T>(s.Norm, s.Rstd, s.Residual, weights.DecoderFinalNormWeight, n, d, eps);
        CpuGemm.Gemm(false, true, n, config.VocabSize, d, HeadScale, s.Norm, d, weights.HeadWeight, d, T.Zero, logits, config.VocabSize);
    }

    private void AddProjection(T5DecodingScratch<T> s, T[] x, T[] weight, int n, int inDim)
    {
        int d = config.Embedding;
        Project(s.Projection, x, weight, n, inDim, d);
        TensorPrimitives.Add(s.Residual.AsSpan(0, n * d), s.Projection.AsSpan(0, n * d), s.Residual.AsSpan(0, n * d));
    }
}

/// <summary>
/// A T5 decoding session's caches: per decoder layer, the self-attention keys and values of every slot's decoder positions
/// (<see cref="TokensPerSlot"/> rows per slot) and the cross-attention keys and values of its encoded input
/// (<see cref="EncoderCapacity"/> rows per slot), plus the self-attention bias by distance.
/// </summary>
internal sealed class T5DecodingCache<T>(int layers, int slots, int tokensPerSlot, int encoderCapacity, int width, T[] distanceBias)
{
    public int TokensPerSlot { get; } = tokensPerSlot;
    public int EncoderCapacity { get; } = encoderCapacity;
    public T[] DistanceBias { get; } = distanceBias;
    public T[][] SelfKeys { get; } = Rows(layers, (long)slots * tokensPerSlot * width);
    public T[][] SelfValues { get; } = Rows(layers, (long)slots * tokensPerSlot * width);
    public T[][] CrossKeys { get; } = Rows(layers, (long)slots * encoderCapacity * width);
    public T[][] CrossValues { get; } = Rows(layers, (long)slots * encoderCapacity * width);

    private static T[][] Rows(int layers, long length) => [.. Enumerable.Range(0, layers).Select(_ => new T[length])];
}

/// <summary>The buffers one cached T5 decoder step runs in, for up to <see cref="Capacity"/> packed tokens; grown, never per step.</summary>
internal sealed class T5DecodingScratch<T>(T5Config config, int capacity) where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public int Capacity { get; } = capacity;
    public int[] Ids { get; } = new int[capacity];
    /// <summary>Decoder positions and self-attention cache rows of the packed tokens.</summary>
    public CachedPositions SelfTokens { get; } = new(capacity);
    /// <summary>The same tokens seen by cross-attention: every key of their slot's encoded input.</summary>
    public CachedPositions CrossTokens { get; } = new(capacity);
    public T[] Residual { get; } = new T[capacity * config.Embedding];
    public T[] Norm { get; } = new T[capacity * config.Embedding];
    public T[] Projection { get; } = new T[capacity * config.Embedding];
    public T[] Rstd { get; } = new T[capacity];
    public T[] Query { get; } = new T[capacity * config.AttentionSize];
    public T[] Key { get; } = new T[capacity * config.AttentionSize];
    public T[] Value { get; } = new T[capacity * config.AttentionSize];
    public T[] Attention { get; } = new T[capacity * config.AttentionSize];
    public T[] Hidden { get; } = new T[capacity * config.FeedForwardSize];
    public T[] Linear { get; } = config.IsGated ? new T[capacity * config.FeedForwardSize] : [];
    public T[] Wide { get; } = new T[capacity * config.FeedForwardSize];
}

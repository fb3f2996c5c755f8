using System.Numerics;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// The buffers one KV-cached step of a decoder-only CPU engine runs in, for up to <see cref="Capacity"/> packed tokens:
/// the residual stream (updated in place block after block), a norm output, a projection, the attention output and norm
/// statistics. A family adds its own (fused qkv, MLP widths). Grown when a step needs more tokens, never per step.
/// </summary>
internal class CachedScratch<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    public CachedScratch(int capacity, int width, int attentionWidth)
    {
        Capacity = capacity;
        Tokens = new CachedPositions(capacity);
        Ids = new int[capacity];
        Residual = new T[capacity * width];
        Norm = new T[capacity * width];
        Projection = new T[capacity * width];
        Attention = new T[capacity * attentionWidth];
        Mean = new T[capacity];
        Rstd = new T[capacity];
    }

    public int Capacity { get; }
    public CachedPositions Tokens { get; }
    /// <summary>Token ids [N] (unused when the tokens are prompt vectors).</summary>
    public int[] Ids { get; }
    public T[] Residual { get; }
    public T[] Norm { get; }
    public T[] Projection { get; }
    public T[] Attention { get; }
    public T[] Mean { get; }
    public T[] Rstd { get; }
}

/// <summary>Every layer's cached keys and values: rows [promptRows + slots·tokensPerSlot, width], the prompts' rows first.</summary>
internal sealed class KeyValueCache<T>(int layers, int rows, int width)
{
    public int Width { get; } = width;
    public int Rows { get; } = rows;
    public T[][] Keys { get; } = [.. Enumerable.Range(0, layers).Select(_ => new T[(long)rows * width])];
    public T[][] Values { get; } = [.. Enumerable.Range(0, layers).Select(_ => new T[(long)rows * width])];
}

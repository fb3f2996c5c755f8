using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>
/// Grouped-query attention's key/value head sharing (Hugging Face's repeat_kv) and its backward. wide [rows, heads·hd],
/// narrow [rows, keyValueHeads·hd]; group = heads / keyValueHeads, and query head h reads kv head h / group.
/// Mirrored by kernels/grouped_query.cu, bit for bit.
/// </summary>
public static class GroupedQueryOps
{
    /// <summary>wide ← narrow with every kv head copied to the query heads of its group.</summary>
    public static void Repeat<T>(Span<T> wide, ReadOnlySpan<T> narrow, int rows, int heads, int keyValueHeads, int headSize)
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        int group = CheckShapes(wide.Length, narrow.Length, rows, heads, keyValueHeads, headSize);
        int att = heads * headSize, kv = keyValueHeads * headSize;
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
                narrow.Slice(r * kv + h / group * headSize, headSize).CopyTo(wide.Slice(r * att + h * headSize, headSize));
    }

    /// <summary>
    /// narrow = for each kv head, the sum of wide over its group's query heads: Repeat's backward. Overwrites narrow.
    /// Each element is ((0 + w_first) + w_next) + …, the heads in increasing h — the order sum_kv_groups adds in.
    /// </summary>
    public static void Sum<T>(Span<T> narrow, ReadOnlySpan<T> wide, int rows, int heads, int keyValueHeads, int headSize)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Attention);
        int group = CheckShapes(wide.Length, narrow.Length, rows, heads, keyValueHeads, headSize);
        int att = heads * headSize, kv = keyValueHeads * headSize;
        narrow[..(rows * kv)].Clear();
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
            {
                var target = narrow.Slice(r * kv + h / group * headSize, headSize);
                TensorPrimitives.Add(target, wide.Slice(r * att + h * headSize, headSize), target);
            }
    }

    private static int CheckShapes(int wideLength, int narrowLength, int rows, int heads, int keyValueHeads, int headSize)
    {
        if (rows < 0 || heads < 1 || keyValueHeads < 1 || headSize < 1 || heads % keyValueHeads != 0)
            throw new ArgumentException($"Grouped-query heads: {heads} query heads must be a positive multiple of {keyValueHeads} kv heads (rows {rows}, head size {headSize}).");
        if (wideLength < (long)rows * heads * headSize || narrowLength < (long)rows * keyValueHeads * headSize)
            throw new ArgumentException("Grouped-query heads: buffers shorter than the shapes.");
        return heads / keyValueHeads;
    }
}

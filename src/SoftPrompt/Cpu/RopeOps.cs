using System.Numerics;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Cpu;

/// <summary>
/// Rotary position embedding in Hugging Face Llama's rotate-half layout: head vector x [hd] at position p, with
/// h = hd/2, c_j = cos(p·ω_j), s_j = sin(p·ω_j): y_j = x_j·c_j − x_{j+h}·s_j, y_{j+h} = x_{j+h}·c_j + x_j·s_j.
/// The backward is the inverse rotation (a rotation's transpose). The cos/sin tables come from <see cref="LlamaRope.Tables{T}"/>.
/// </summary>
public static class RopeOps
{
    /// <summary>
    /// x [B, S, heads·hd] rotated in place, position of (b, t) = t (the prompt counts). cos, sin [≥ S, hd/2].
    /// With <paramref name="scale"/> (null = 1) each rotated value is then multiplied by it — x ← scale·R(t)·x, rounded
    /// as kernels/rope.cu does — so attention's 1/√hd can ride on the query's rotation.
    /// </summary>
    public static void Forward<T>(Span<T> x, ReadOnlySpan<T> cos, ReadOnlySpan<T> sin, int batch, int sequence, int heads, int headSize, T? scale = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        => Rotate(x, cos, sin, batch, sequence, heads, headSize, inverse: false, scale ?? T.One);

    /// <summary>dx from dy [B, S, heads·hd], in place: the rotation by −angle, then the optional scale (x ← scale·R(t)ᵀ·x).</summary>
    public static void Backward<T>(Span<T> gradient, ReadOnlySpan<T> cos, ReadOnlySpan<T> sin, int batch, int sequence, int heads, int headSize, T? scale = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        => Rotate(gradient, cos, sin, batch, sequence, heads, headSize, inverse: true, scale ?? T.One);

    // Multiplying by a scale of 1 is exact, so callers without a scale get the unscaled rotation's bits.
    private static void Rotate<T>(Span<T> x, ReadOnlySpan<T> cos, ReadOnlySpan<T> sin, int batch, int sequence, int heads, int headSize, bool inverse, T scale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Rope);
        int half = headSize / 2, width = heads * headSize;
        if (headSize % 2 != 0) throw new ArgumentException($"RoPE needs an even head size, got {headSize}.");
        if (x.Length < (long)batch * sequence * width || cos.Length < sequence * half || sin.Length < sequence * half)
            throw new ArgumentException("RoPE: buffers shorter than the shapes.");
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < sequence; t++)
                RotateRow(x.Slice((b * sequence + t) * width, width), cos.Slice(t * half, half), sin.Slice(t * half, half), heads, headSize, inverse, scale);
    }

    /// <summary>
    /// Rows x [N, heads·hd] rotated in place, row i at position <paramref name="positions"/>[i] (KV-cached decoding, where
    /// packed rows come from different sequences and offsets), then multiplied by <paramref name="scale"/> as in Forward.
    /// </summary>
    public static void ForwardAt<T>(Span<T> x, ReadOnlySpan<T> cos, ReadOnlySpan<T> sin, ReadOnlySpan<int> positions, int heads, int headSize, T? scale = null)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Rope);
        int half = headSize / 2, width = heads * headSize;
        if (headSize % 2 != 0) throw new ArgumentException($"RoPE needs an even head size, got {headSize}.");
        if (x.Length < (long)positions.Length * width) throw new ArgumentException("RoPE: buffer shorter than the rows.");
        for (int i = 0; i < positions.Length; i++)
        {
            int p = positions[i];
            if ((long)(p + 1) * half > cos.Length) throw new ArgumentException($"RoPE: position {p} is past the {cos.Length / half} positions of the tables.");
            RotateRow(x.Slice(i * width, width), cos.Slice(p * half, half), sin.Slice(p * half, half), heads, headSize, inverse: false, scale ?? T.One);
        }
    }

    private static void RotateRow<T>(Span<T> row, ReadOnlySpan<T> c, ReadOnlySpan<T> s, int heads, int headSize, bool inverse, T scale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int half = headSize / 2;
        for (int h = 0; h < heads; h++)
        {
            var head = row.Slice(h * headSize, headSize);
            for (int j = 0; j < half; j++)
            {
                T first = head[j], second = head[j + half], sj = inverse ? -s[j] : s[j];
                head[j] = (first * c[j] - second * sj) * scale;
                head[j + half] = (second * c[j] + first * sj) * scale;
            }
        }
    }
}

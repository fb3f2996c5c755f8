using System.Runtime.CompilerServices;

namespace SoftPrompt.Cuda.Kernels;

/// <summary>
/// Argument checks and grid arithmetic shared by the kernel launchers. Spans handed to a launcher are often slices of
/// capacity-sized buffers, so a span must hold <em>at least</em> what the shapes need; a span of length 0
/// (<c>default(DeviceSpan&lt;T&gt;)</c>) means "absent" where a launcher documents it as optional.
/// </summary>
internal static class LaunchChecks
{
    /// <summary>Most blocks a grid-stride launch uses (enough to fill any current GPU several times over).</summary>
    public const int MaxGridStrideBlocks = 4096;

    /// <summary>
    /// Largest element count of the grid-stride kernels: they index with 32-bit ints and step by at most
    /// <see cref="MaxGridStrideBlocks"/> × 1024 threads, so the index never overflows.
    /// </summary>
    public const int MaxElements = int.MaxValue - 2 * MaxGridStrideBlocks * 1024;

    /// <summary>Throws unless <paramref name="span"/> holds at least <paramref name="needed"/> elements.</summary>
    public static void AtLeast<T>(string kernel, DeviceSpan<T> span, long needed, string shape,
        [CallerArgumentExpression(nameof(span))] string? name = null) where T : unmanaged
    {
        if (span.Length < needed)
            throw new ArgumentException($"{kernel}: {name} must hold {shape} = {needed} elements, the span holds {span.Length}.", name);
    }

    /// <summary>Like <see cref="AtLeast"/>, but a span of length 0 (absent) is accepted.</summary>
    public static void AbsentOrAtLeast<T>(string kernel, DeviceSpan<T> span, long needed, string shape,
        [CallerArgumentExpression(nameof(span))] string? name = null) where T : unmanaged
    {
        if (span.Length != 0) AtLeast(kernel, span, needed, shape, name);
    }

    /// <summary>Throws unless <paramref name="value"/> ≥ <paramref name="minimum"/>.</summary>
    public static void NotBelow(string kernel, int value, int minimum, [CallerArgumentExpression(nameof(value))] string? name = null)
    {
        if (value < minimum) throw new ArgumentOutOfRangeException(name, value, $"{kernel}: {name} must be at least {minimum}.");
    }

    /// <summary><paramref name="count"/> as an int no larger than <see cref="MaxElements"/>, or an error naming the kernel.</summary>
    public static int Elements(string kernel, long count, string what)
    {
        if (count < 0 || count > MaxElements)
            throw new ArgumentException($"{kernel}: {what} has {count} elements; at most {MaxElements} are supported per launch.");
        return (int)count;
    }

    /// <summary>Blocks for a grid-stride loop over <paramref name="items"/> work items of one thread each.</summary>
    public static int GridStrideBlocks(long items, int threads) =>
        (int)Math.Clamp((items + threads - 1) / threads, 1, MaxGridStrideBlocks);

    /// <summary>Blocks of <paramref name="threads"/> threads for one warp per row over <paramref name="rows"/> rows.</summary>
    public static int WarpPerRowBlocks(int rows, int threads) => (rows + threads / 32 - 1) / (threads / 32);

    /// <summary>Whether every address is 16-byte aligned (the kernels' float4 paths; they decide on the device too).</summary>
    public static bool Aligned16(params ReadOnlySpan<ulong> addresses)
    {
        foreach (ulong a in addresses) if ((a & 15) != 0) return false;
        return true;
    }

    /// <summary><paramref name="value"/> rounded up to a whole number of warps, clamped to [32, <paramref name="max"/>].</summary>
    public static int WarpMultiple(long value, int max) => (int)Math.Clamp((value + 31) / 32 * 32, 32, max);
}

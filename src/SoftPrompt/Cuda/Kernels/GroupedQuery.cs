namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/grouped_query.cu: grouped-query attention's repeat_kv and its backward (mirrors of
// Cpu/GroupedQueryOps). Grid-stride kernels, one thread per output element (float4 when headSize % 4 == 0 and both
// buffers are aligned): 256 threads, at most LaunchChecks.MaxGridStrideBlocks blocks.

/// <summary>
/// repeat_kv_heads: wide [rows, heads·headSize] ← narrow [rows, keyValueHeads·headSize], query head h reading kv head
/// h / (heads/keyValueHeads) (GroupedQueryOps.Repeat; a copy). heads a multiple of keyValueHeads; no overlap.
/// </summary>
internal static class RepeatKeyValueHeads
{
    public const string Name = "repeat_kv_heads";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> wide, DeviceSpan<float> narrow, int rows, int heads, int keyValueHeads, int headSize)
    {
        int n = GroupedQueryChecks.WideElements(Name, rows, heads, keyValueHeads, headSize);
        LaunchChecks.AtLeast(Name, wide, n, "[rows, heads·headSize]");
        LaunchChecks.AtLeast(Name, narrow, (long)rows * keyValueHeads * headSize, "[rows, keyValueHeads·headSize]");
        if (n == 0) return;
        ulong widePtr = wide.Address, narrowPtr = narrow.Address;
        bool quads = headSize % 4 == 0 && LaunchChecks.Aligned16(widePtr, narrowPtr);
        int blocks = LaunchChecks.GridStrideBlocks(quads ? n / 4 : n, Threads);
        KernelStubs.repeat_kv_heads(device, new(blocks, Threads), wide: wide, narrow: narrow, rows: rows, heads: heads, kv_heads: keyValueHeads, head_size: headSize);
    }

    /// <summary>repeat_kv_heads_bf16: the same copy of bf16 k/v (one element per thread step).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> wide, DeviceSpan<ushort> narrow, int rows, int heads, int keyValueHeads, int headSize)
    {
        const string name = Name + "_bf16";
        int n = GroupedQueryChecks.WideElements(name, rows, heads, keyValueHeads, headSize);
        LaunchChecks.AtLeast(name, wide, n, "[rows, heads·headSize]");
        LaunchChecks.AtLeast(name, narrow, (long)rows * keyValueHeads * headSize, "[rows, keyValueHeads·headSize]");
        if (n == 0) return;
        KernelStubs.repeat_kv_heads_bf16(device, new(LaunchChecks.GridStrideBlocks(n, Threads), Threads), wide: wide, narrow: narrow, rows: rows, heads: heads, kv_heads: keyValueHeads, head_size: headSize);
    }
}

/// <summary>
/// sum_kv_groups: narrow [rows, keyValueHeads·headSize] = for each kv head, the sum over its group's query heads (in
/// increasing h, from +0) of wide [rows, heads·headSize] — repeat_kv's backward (GroupedQueryOps.Sum, bit for bit).
/// Overwrites narrow; no atomics, so deterministic. heads a multiple of keyValueHeads; no overlap.
/// </summary>
internal static class SumKeyValueGroups
{
    public const string Name = "sum_kv_groups";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> narrow, DeviceSpan<float> wide, int rows, int heads, int keyValueHeads, int headSize)
    {
        int wideCount = GroupedQueryChecks.WideElements(Name, rows, heads, keyValueHeads, headSize);
        int n = rows * keyValueHeads * headSize;  // ≤ wideCount
        LaunchChecks.AtLeast(Name, narrow, n, "[rows, keyValueHeads·headSize]");
        LaunchChecks.AtLeast(Name, wide, wideCount, "[rows, heads·headSize]");
        if (n == 0) return;
        ulong narrowPtr = narrow.Address, widePtr = wide.Address;
        bool quads = headSize % 4 == 0 && LaunchChecks.Aligned16(narrowPtr, widePtr);
        int blocks = LaunchChecks.GridStrideBlocks(quads ? n / 4 : n, Threads);
        KernelStubs.sum_kv_groups(device, new(blocks, Threads), narrow: narrow, wide: wide, rows: rows, heads: heads, kv_heads: keyValueHeads, head_size: headSize);
    }
}

/// <summary>The shape checks both kernels share.</summary>
file static class GroupedQueryChecks
{
    /// <summary>rows·heads·headSize (the wide side, the larger), after checking the head counts fit together.</summary>
    public static int WideElements(string kernel, int rows, int heads, int keyValueHeads, int headSize)
    {
        LaunchChecks.NotBelow(kernel, rows, 0);
        LaunchChecks.NotBelow(kernel, heads, 1);
        LaunchChecks.NotBelow(kernel, keyValueHeads, 1);
        LaunchChecks.NotBelow(kernel, headSize, 1);
        if (heads % keyValueHeads != 0)
            throw new ArgumentException($"{kernel}: heads ({heads}) must be a multiple of keyValueHeads ({keyValueHeads}).", nameof(keyValueHeads));
        return LaunchChecks.Elements(kernel, (long)rows * heads * headSize, "wide [rows, heads·headSize]");
    }
}

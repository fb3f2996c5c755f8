namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/decoding.cu: KV-cached decoding. A step row's key range is four ints (prefix start, prefix
// length, own start, key length): key j < prefix length at cache row prefix start + j (its prompt's shared rows), later
// keys at own start + (j − prefix length); key length = the row's position + 1.

/// <summary>
/// decode_embedding: x[i] = (tokens[i] ≥ 0 ? wte[tokens[i]] : prompts[promptRows[i]]) + wpe[positions[i]] (no wpe: nothing
/// added). x [rows, C]; tokens, promptRows, positions [rows]; prompts [promptRowCount, C]; wte [V, C]; wpe [·, C] or empty.
/// The full forward's embeddings bit for bit, at each row's own position.
/// </summary>
internal static class DecodeEmbedding
{
    public const string Name = "decode_embedding";
    public const int Threads = 256;  // one warp per row

    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<int> tokens, DeviceSpan<int> promptRows, DeviceSpan<int> positions,
        DeviceSpan<float> prompts, DeviceSpan<float> wte, DeviceSpan<float> wpe, int rows, int channels)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        LaunchChecks.AtLeast(Name, x, (long)rows * channels, "[rows, C]");
        LaunchChecks.AtLeast(Name, tokens, rows, "[rows]");
        LaunchChecks.AtLeast(Name, promptRows, rows, "[rows]");
        LaunchChecks.AtLeast(Name, positions, rows, "[rows]");
        LaunchChecks.AtLeast(Name, wte, channels, "[V ≥ 1, C]");
        if (rows == 0) return;
        int Count(DeviceSpan<float> table) => (int)Math.Min(int.MaxValue, table.Length / channels);
        KernelStubs.decode_embedding(device, new(LaunchChecks.WarpPerRowBlocks(rows, Threads), Threads), x: x, tokens: tokens, prompt_rows: promptRows,
            positions: positions, prompts: prompts, wte: wte, wpe: wpe, rows: rows, channels: channels, prompt_row_count: Count(prompts), vocab: Count(wte),
            position_count: Count(wpe));
    }
}

/// <summary>
/// kv_cache_append: each step row's key k[i, :width] and value v[i, :width] into kCache / vCache [cacheRows, cacheStride]
/// at its own next row (own start + key length − 1 − prefix length). k and v may be column slices of one fused projection
/// (row strides kStride, vStride). Exact copies.
/// </summary>
internal static class KeyValueCacheAppend
{
    public const string Name = "kv_cache_append";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> kCache, DeviceSpan<float> vCache, DeviceSpan<float> k, int kStride, DeviceSpan<float> v, int vStride,
        DeviceSpan<int> rowKeys, int rows, int width, int cacheStride)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, width, 1);
        if (cacheStride < width || kStride < width || vStride < width) throw new ArgumentException($"{Name}: every row stride must cover the {width} copied columns.");
        LaunchChecks.AtLeast(Name, rowKeys, 4L * rows, "[rows, 4]");
        if (rows == 0) return;
        LaunchChecks.AtLeast(Name, k, (long)(rows - 1) * kStride + width, "[rows, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, (long)(rows - 1) * vStride + width, "[rows, ·] at vStride");
        if (vCache.Length != kCache.Length) throw new ArgumentException($"{Name}: the key and value caches differ in size.");
        int cacheRows = (int)Math.Min(int.MaxValue, kCache.Length / cacheStride);
        KernelStubs.kv_cache_append(device, new(LaunchChecks.WarpPerRowBlocks(rows, Threads), Threads), k_cache: kCache, v_cache: vCache, k: k, v: v, row_keys: rowKeys,
            rows: rows, width: width, k_stride: kStride, v_stride: vStride, cache_stride: cacheStride, cache_rows: cacheRows);
    }
}

/// <summary>
/// Decode attention (flash-decoding): out[i, h] = softmax(scale·q[i, h]·Kᵀ + bias)·V over row i's cached keys (its key range),
/// with query head h reading kv head h / (heads / kvHeads) in place. decode_attention_split_hs* computes each split of
/// <see cref="Splits"/>'s split size keys (a partial max, sum and output per (row, head, split)), then
/// decode_attention_combine merges them into out. fp32 throughout; head sizes up to 256, any value.
/// </summary>
internal static class DecodeAttention
{
    public const string SplitName = "decode_attention_split";
    public const string CombineName = "decode_attention_combine";
    public const int Threads = 128;
    public const int MaxHeadSize = 256;
    /// <summary>Fewest keys a split takes: below this a block's four warps would idle more than they work.</summary>
    public const int MinSplitSize = 64;

    /// <summary>
    /// A split size for the step's longest key length that keeps at most <paramref name="maxSplits"/> splits: short contexts
    /// run in one split (the combine then only normalises), long ones spread over up to maxSplits blocks per (row, head).
    /// </summary>
    public static (int SplitSize, int Splits) Splits(int longestKeyLength, int maxSplits)
    {
        LaunchChecks.NotBelow(SplitName, longestKeyLength, 1);
        LaunchChecks.NotBelow(SplitName, maxSplits, 1);
        int size = Math.Max(MinSplitSize, (longestKeyLength + maxSplits - 1) / maxSplits);
        return (size, (longestKeyLength + size - 1) / size);
    }

    public static int Tile(int headSize) => headSize <= 32 ? 32 : headSize <= 64 ? 64 : headSize <= 128 ? 128 : 256;

    /// <param name="partialOut">[rows, heads, splits, headSize] scratch; <paramref name="partialMax"/>, <paramref name="partialSum"/> [rows, heads, splits].</param>
    /// <param name="splitSize">Keys per split; every row's key length must be at most splitSize·splits.</param>
    /// <param name="distanceBias">
    /// Empty, or [heads, <paramref name="biasDistances"/>]: added to the score of a key d positions before its query
    /// (T5's decoder self-attention bias, bucketed once per session); every row's key length must be at most biasDistances.
    /// </param>
    public static void Launch(IComputeDevice device, DeviceSpan<float> output, int outStride, DeviceSpan<float> q, int qStride, DeviceSpan<float> kCache, DeviceSpan<float> vCache,
        int cacheStride, DeviceSpan<int> rowKeys, DeviceSpan<float> partialOut, DeviceSpan<float> partialMax, DeviceSpan<float> partialSum,
        int rows, int heads, int kvHeads, int headSize, int splitSize, int splits, float scale, DeviceSpan<float> distanceBias = default, int biasDistances = 0)
    {
        LaunchChecks.NotBelow(SplitName, rows, 0);
        LaunchChecks.NotBelow(SplitName, heads, 1);
        LaunchChecks.NotBelow(SplitName, kvHeads, 1);
        LaunchChecks.NotBelow(SplitName, headSize, 1);
        LaunchChecks.NotBelow(SplitName, splitSize, 1);
        LaunchChecks.NotBelow(SplitName, splits, 1);
        if (headSize > MaxHeadSize) throw new ArgumentException($"{SplitName}: head size {headSize} exceeds the kernel's maximum of {MaxHeadSize}.", nameof(headSize));
        if (heads % kvHeads != 0) throw new ArgumentException($"{SplitName}: {heads} query heads do not split into groups of {kvHeads} kv heads.", nameof(kvHeads));
        int width = heads * headSize;
        if (outStride < width || qStride < width) throw new ArgumentException($"{SplitName}: the q and out row strides must cover the {width} attention columns.");
        if (cacheStride < kvHeads * headSize) throw new ArgumentException($"{SplitName}: the cache stride must cover the {kvHeads * headSize} key/value columns.", nameof(cacheStride));
        if (vCache.Length != kCache.Length) throw new ArgumentException($"{SplitName}: the key and value caches differ in size.");
        LaunchChecks.AtLeast(SplitName, rowKeys, 4L * rows, "[rows, 4]");
        long partials = (long)rows * heads * splits;
        LaunchChecks.AtLeast(SplitName, partialOut, partials * headSize, "[rows, heads, splits, headSize]");
        LaunchChecks.AtLeast(SplitName, partialMax, partials, "[rows, heads, splits]");
        LaunchChecks.AtLeast(SplitName, partialSum, partials, "[rows, heads, splits]");
        if (distanceBias.Length > 0)
        {
            LaunchChecks.NotBelow(SplitName, biasDistances, 1);
            LaunchChecks.AtLeast(SplitName, distanceBias, (long)heads * biasDistances, "[heads, distances]");
        }
        if (rows == 0) return;
        LaunchChecks.AtLeast(SplitName, q, (long)(rows - 1) * qStride + width, "[rows, ·] at qStride");
        LaunchChecks.AtLeast(SplitName, output, (long)(rows - 1) * outStride + width, "[rows, ·] at outStride");
        int cacheRows = (int)Math.Min(int.MaxValue, kCache.Length / cacheStride);
        var grid = new Dim3(checked((uint)(rows * heads)), (uint)splits);
        KernelStubs.decode_attention_split(device, headSizeTile: Tile(headSize), new(grid, Threads), partial_out: partialOut, partial_max: partialMax, partial_sum: partialSum,
            q: q, k_cache: kCache, v_cache: vCache, row_keys: rowKeys, distance_bias: distanceBias, bias_distances: distanceBias.Length > 0 ? biasDistances : 0, rows: rows, heads: heads, kv_heads: kvHeads, head_size: headSize, q_stride: qStride,
            cache_stride: cacheStride, cache_rows: cacheRows, split_size: splitSize, splits: splits, scale: scale);
        KernelStubs.decode_attention_combine(device, new((uint)(rows * heads), Threads), @out: output, partial_out: partialOut, partial_max: partialMax, partial_sum: partialSum,
            row_keys: rowKeys, rows: rows, heads: heads, head_size: headSize, out_stride: outStride, split_size: splitSize, splits: splits);
    }
}

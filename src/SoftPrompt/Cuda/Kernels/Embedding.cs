namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/embedding.cu (mirrors of Cpu/EmbeddingOps). All spans are device addresses; they may be longer
// than the shapes need (slices of capacity-sized plans).

/// <summary>
/// embedding_forward (EmbeddingOps.Forward): x[b, t, :] = (t &lt; P_b ? prompts[o_b + t, :] : t − P_b &lt; tokenLength ?
/// wte[tokens[b, t − P_b], :] : 0) + wpe[t, :], with prompt k = promptIndex[b] at rows [o_k, o_k + P_k) of the packed
/// prompts. x [B, T, C]; tokens [B, tokenLength]; prompts [ΣP_k, C]; promptIndex [B]; promptOffsets [K + 1] (empty: no
/// prompts, every row starts with its tokens); wte [V, C]; wpe [≥T, C]. Rows may use prompts of different lengths.
/// Ids are not range-checked on the GPU (the emulator asserts them).
/// </summary>
internal static class EmbeddingForward
{
    public const string Name = "embedding_forward";
    public const int Threads = 256;  // one warp per (b, t) row

    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<int> tokens, DeviceSpan<float> prompts, DeviceSpan<int> promptIndex,
        DeviceSpan<int> promptOffsets, DeviceSpan<float> wte, DeviceSpan<float> wpe, int batch, int sequence, int tokenLength, int channels)
    {
        LaunchChecks.NotBelow(Name, batch, 0);
        LaunchChecks.NotBelow(Name, sequence, 0);
        LaunchChecks.NotBelow(Name, tokenLength, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        int rows = checked(batch * sequence);
        LaunchChecks.AtLeast(Name, x, (long)rows * channels, "[B, T, C]");
        LaunchChecks.AtLeast(Name, tokens, (long)batch * tokenLength, "[B, tokenLength]");
        LaunchChecks.AtLeast(Name, wpe, (long)sequence * channels, "[T, C]");
        int promptCount = 0, vocab = 0;
        if (promptOffsets.Length > 0)
        {
            LaunchChecks.AtLeast(Name, promptOffsets, 2, "[K + 1 ≥ 2]");
            LaunchChecks.AtLeast(Name, promptIndex, batch, "[B]");
            promptCount = (int)Math.Min(int.MaxValue, promptOffsets.Length - 1);
        }
        if (tokenLength > 0)
        {
            LaunchChecks.AtLeast(Name, wte, channels, "[V ≥ 1, C]");
            vocab = (int)Math.Min(int.MaxValue, wte.Length / channels);
        }
        if (rows == 0) return;
        KernelStubs.embedding_forward(device, new(LaunchChecks.WarpPerRowBlocks(rows, Threads), Threads), x: x, tokens: tokens, prompts: prompts, prompt_index: promptIndex, prompt_offsets: promptOffsets, wte: wte, wpe: wpe, batch: batch, sequence: sequence, token_length: tokenLength, channels: channels, prompt_count: promptCount, vocab: vocab);
    }
}

/// <summary>
/// prompt_gradient (EmbeddingOps.PromptGradient): dPrompts[o_k + p, c] (= or +=) Σ over b with promptIndex[b] == k, in
/// increasing b, of dx[b, p, c], for p &lt; P_k. dPrompts [ΣP_k, C]; dx [B, T, C]; promptIndex [B]; promptOffsets [K + 1]
/// on the device, with <paramref name="promptRows"/> = ΣP_k its last entry (the grid). Deterministic and bit-exact with
/// the CPU op (no atomics); prompts no row uses get 0 (or keep their value when accumulating).
/// </summary>
internal static class PromptGradient
{
    public const string Name = "prompt_gradient";
    public const int MaxThreads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> dPrompts, DeviceSpan<float> dx, DeviceSpan<int> promptIndex, DeviceSpan<int> promptOffsets,
        int promptRows, int batch, int sequence, int channels, bool accumulate)
    {
        LaunchChecks.NotBelow(Name, batch, 0);
        LaunchChecks.NotBelow(Name, sequence, 0);
        LaunchChecks.NotBelow(Name, promptRows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        LaunchChecks.AtLeast(Name, promptOffsets, 2, "[K + 1 ≥ 2]");
        LaunchChecks.AtLeast(Name, dPrompts, (long)promptRows * channels, "[ΣP, C]");
        LaunchChecks.AtLeast(Name, dx, (long)batch * sequence * channels, "[B, T, C]");
        LaunchChecks.AtLeast(Name, promptIndex, batch, "[B]");
        if (promptRows == 0) return;
        int promptCount = (int)Math.Min(int.MaxValue, promptOffsets.Length - 1);
        long chunks = (channels + 3L) / 4;  // each thread owns 4 consecutive channels
        int threads = LaunchChecks.WarpMultiple(chunks, MaxThreads);
        int columnBlocks = (int)((chunks + threads - 1) / threads);
        int accumulateFlag = accumulate ? 1 : 0;
        KernelStubs.prompt_gradient(device, new(new Dim3((uint)promptRows, (uint)columnBlocks), threads), d_prompts: dPrompts, dx: dx, prompt_index: promptIndex, prompt_offsets: promptOffsets, batch: batch, sequence: sequence, prompt_count: promptCount, channels: channels, accumulate: accumulateFlag);
    }
}

/// <summary>
/// What gather_rows and scatter_rows share: one warp per compact row i, copied from (gather) or to (scatter) row
/// rowIndex[i] of the indexed side. Bit-exact copies.
/// </summary>
internal static class IndexedRows
{
    public const int Threads = 256;

    public static void Copy(IComputeDevice device, string kernel, DeviceSpan<float> destination, DeviceSpan<float> source, DeviceSpan<int> rowIndex,
        int count, int channels, bool scatter)
    {
        if (!Checked(kernel, destination, source, rowIndex, count, channels, scatter, out int blocks, out int indexedRows)) return;
        if (scatter)
            KernelStubs.scatter_rows(device, new(blocks, Threads), destination: destination, source: source, row_index: rowIndex, count: count, channels: channels, destination_rows: indexedRows);
        else
            KernelStubs.gather_rows(device, new(blocks, Threads), destination: destination, source: source, row_index: rowIndex, count: count, channels: channels, source_rows: indexedRows);
    }

    /// <summary>Checks the shapes; false when there is nothing to copy, else the launch's blocks and the indexed side's rows.</summary>
    public static bool Checked<T>(string kernel, DeviceSpan<T> destination, DeviceSpan<T> source, DeviceSpan<int> rowIndex, int count, int channels, bool scatter,
        out int blocks, out int indexedRows) where T : unmanaged
    {
        LaunchChecks.NotBelow(kernel, count, 0);
        LaunchChecks.NotBelow(kernel, channels, 1);
        var (compact, compactName, indexed, indexedName) = scatter
            ? (source, nameof(source), destination, nameof(destination))
            : (destination, nameof(destination), source, nameof(source));
        LaunchChecks.AtLeast(kernel, compact, (long)count * channels, "[count, C]", compactName);
        LaunchChecks.AtLeast(kernel, rowIndex, count, "[count]");
        (blocks, indexedRows) = (0, 0);
        if (count == 0) return false;
        LaunchChecks.AtLeast(kernel, indexed, channels, "[rows ≥ 1, C]", indexedName);
        indexedRows = (int)Math.Min(int.MaxValue, indexed.Length / channels);
        blocks = LaunchChecks.WarpPerRowBlocks(count, Threads);
        return true;
    }
}

/// <summary>gather_rows: destination[i, :] = source[rowIndex[i], :]. destination [count, C]; source [rows, C]; rowIndex [count]. Bit-exact copy.</summary>
internal static class GatherRows
{
    public const string Name = "gather_rows";

    public static void Launch(IComputeDevice device, DeviceSpan<float> destination, DeviceSpan<float> source, DeviceSpan<int> rowIndex, int count, int channels) =>
        IndexedRows.Copy(device, Name, destination, source, rowIndex, count, channels, scatter: false);

    /// <summary>gather_rows_bf16: the same for bf16 rows (q|k|v and the attention output in bf16 precision).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> destination, DeviceSpan<ushort> source, DeviceSpan<int> rowIndex, int count, int channels)
    {
        const string name = "gather_rows_bf16";
        if (!IndexedRows.Checked(name, destination, source, rowIndex, count, channels, scatter: false, out int blocks, out int sourceRows)) return;
        KernelStubs.gather_rows_bf16(device, new(blocks, IndexedRows.Threads), destination: destination, source: source, row_index: rowIndex, count: count, channels: channels, source_rows: sourceRows);
    }
}

/// <summary>
/// scatter_rows: destination[rowIndex[i], :] = source[i, :] (indices distinct; other destination rows untouched).
/// destination [rows, C]; source [count, C]; rowIndex [count]. Bit-exact copy.
/// </summary>
internal static class ScatterRows
{
    public const string Name = "scatter_rows";

    public static void Launch(IComputeDevice device, DeviceSpan<float> destination, DeviceSpan<float> source, DeviceSpan<int> rowIndex, int count, int channels) =>
        IndexedRows.Copy(device, Name, destination, source, rowIndex, count, channels, scatter: true);
}

/// <summary>
/// gather_sum_rows: destination[r, :] (= or +=) Σ over i in [starts[r], starts[r + 1]), in order, of source[index[i], :]
/// (rows with no entries get 0, or keep their value when accumulating). destination [rows, C]; source [·, C];
/// starts [rows + 1]; index [starts[rows]]. Deterministic: bit-identical to a loop over the entries. One warp per (row,
/// 128-channel slice), so a row shared by the whole batch is spread over C / 128 warps.
/// </summary>
internal static class GatherSumRows
{
    public const string Name = "gather_sum_rows";
    public const int Threads = 256;
    public const int SliceChannels = 128;  // one warp per (destination row, slice of this many channels): kSumSlice in the kernel

    public static void Launch(IComputeDevice device, DeviceSpan<float> destination, DeviceSpan<float> source, DeviceSpan<int> starts, DeviceSpan<int> index,
        int rows, int channels, bool accumulate)
    {
        if (!Check(Name, destination, source, starts, rows, channels, out int sourceRows)) return;
        int accumulateFlag = accumulate ? 1 : 0;
        KernelStubs.gather_sum_rows(device, Grid(rows, channels), destination: destination, source: source, starts: starts, index: index, rows: rows, channels: channels, source_rows: sourceRows, accumulate: accumulateFlag);
    }

    /// <summary>
    /// gather_sum_rows_bf16: the same fp32 sums stored in bf16 (each rounded once to nearest even: bit for bit
    /// convert_to_bf16 of the fp32 launch's result), never accumulating — the operand of the bf16 GEMM that reads it.
    /// </summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> destination, DeviceSpan<float> source, DeviceSpan<int> starts, DeviceSpan<int> index,
        int rows, int channels)
    {
        const string name = Name + "_bf16";
        if (!Check(name, destination, source, starts, rows, channels, out int sourceRows)) return;
        KernelStubs.gather_sum_rows_bf16(device, Grid(rows, channels), destination: destination, source: source, starts: starts, index: index, rows: rows, channels: channels, source_rows: sourceRows);
    }

    private static bool Check<TOut>(string name, DeviceSpan<TOut> destination, DeviceSpan<float> source, DeviceSpan<int> starts, int rows, int channels, out int sourceRows)
        where TOut : unmanaged
    {
        LaunchChecks.NotBelow(name, rows, 0);
        LaunchChecks.NotBelow(name, channels, 1);
        LaunchChecks.AtLeast(name, destination, (long)rows * channels, "[rows, C]");
        LaunchChecks.AtLeast(name, starts, rows + 1L, "[rows + 1]");
        sourceRows = 0;
        if (rows == 0) return false;
        LaunchChecks.AtLeast(name, source, channels, "[source rows ≥ 1, C]");
        sourceRows = (int)Math.Min(int.MaxValue, source.Length / channels);
        return true;
    }

    private static LaunchShape Grid(int rows, int channels) =>
        new(LaunchChecks.WarpPerRowBlocks(checked(rows * ((channels + SliceChannels - 1) / SliceChannels)), Threads), Threads);
}

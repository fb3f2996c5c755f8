using System.Runtime.CompilerServices;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/attention.cu: multi-head attention, FlashAttention-2 style in fp32 (mirror of
// Cpu/BiasedAttentionOps, with the bias of Models/T5/T5RelativeBuckets looked up on the fly). One kernel family serves every
// model: GPT-2 (causal, scale 1/√hs, q/k/v and their gradients as column slices of one fused [B·T, 3C] buffer), T5
// encoder self-attention (bidirectional bias + key lengths), decoder self-attention (causal + bias) and cross-attention
// (Tq ≠ Tk, key lengths, no bias), and Llama (causal, no bias). Every kernel is instantiated for the head size padded to
// 16, 32, 64 or 128; the launcher picks the variant, the tile sizes and the dynamic shared memory (at most 78,336 bytes,
// so sm_80/86 parts run them too). Every [rows, ·] operand comes with its row stride (≥ H·hs), so it may be a column
// slice of a wider buffer. Spans may be longer than needed (slices of capacity-sized plans); a span of length 0 means
// "absent" where documented.
// fp32 spans (DeviceSpan<float> q, k, v, out) always run those fp32 SIMT kernels. bf16 precision keeps bf16 in memory:
// the launchers called with DeviceSpan<ushort> q, k, v and out (the forward writes out in bf16; lse, dout and the gradients
// stay fp32) run the *_bf16 kernels — at hs 64 / 128 those of kernels/attention_tc.cu (the same semantics on bf16
// mma.sync with fp32 accumulation; AttentionTensorCores; at most 70,656 / 85,888 bytes of dynamic shared memory, which
// CudaDevice opts into; an sm_86/89 part allows 99 KB per block, so both fit), the SIMT kernels reading bf16 at every
// other head size — so an engine's bf16 path is one call whatever its head size.

/// <summary>Shape checks, pointers and the padded-head-size dispatch shared by the attention launchers.</summary>
internal static class AttentionShape
{
    public const int Threads = 128;
    public const int MaxHeadSize = 128;

    /// <summary>
    /// Validates the shape, scale, key/value heads and input strides; returns A = H·hs and the k/v width Hkv·hs.
    /// <paramref name="keyValueHeads"/> other than H (grouped-query heads read in place) needs the tensor-core kernels:
    /// bf16 storage (<paramref name="bf16Storage"/>) at hs 64 or 128.
    /// </summary>
    public static (int Width, int KeyValueWidth) Widths(string kernel, int batch, int queryLength, int keyLength, int heads, int keyValueHeads, int headSize,
        int qStride, int kStride, int vStride, float scale, bool bf16Storage)
    {
        LaunchChecks.NotBelow(kernel, batch, 0);
        LaunchChecks.NotBelow(kernel, queryLength, 0);
        LaunchChecks.NotBelow(kernel, keyLength, 1);
        LaunchChecks.NotBelow(kernel, heads, 1);
        LaunchChecks.NotBelow(kernel, headSize, 1);
        if (headSize > MaxHeadSize)
            throw new ArgumentException($"{kernel}: head size {headSize} exceeds the kernels' maximum of {MaxHeadSize}.", nameof(headSize));
        if ((long)batch * heads > 65_535)
            throw new ArgumentException($"{kernel}: B·H = {(long)batch * heads} exceeds the grid's y limit of 65,535; split the batch.", nameof(batch));
        if (!float.IsFinite(scale) || scale <= 0f)
            throw new ArgumentOutOfRangeException(nameof(scale), scale, $"{kernel}: the score scale must be positive and finite (1/√hs for GPT-2, 1 for T5 and Llama).");
        if (keyValueHeads != heads)
        {
            if (keyValueHeads < 1 || heads % keyValueHeads != 0)
                throw new ArgumentException($"{kernel}: {heads} query heads are not a multiple of {keyValueHeads} key/value heads.", nameof(keyValueHeads));
            if (!bf16Storage || !AttentionTensorCores.Supports(headSize))
                throw new ArgumentException($"{kernel}: grouped-query heads ({heads} query, {keyValueHeads} key/value) are read in place only by the tensor-core kernels, which take bf16 q, k, v (the DeviceSpan<ushort> overloads) at head size 64 or 128; here the head size is {headSize} and q, k, v are {(bf16Storage ? "bf16" : "fp32")}: repeat k and v per query head first (RepeatKeyValueHeads).", nameof(keyValueHeads));
        }
        long width = (long)heads * headSize, kvWidth = (long)keyValueHeads * headSize;
        if (qStride < width || kStride < kvWidth || vStride < kvWidth)
            throw new ArgumentException($"{kernel}: row strides q {qStride}, k {kStride}, v {vStride} must be at least H·hs = {width} (q) and Hkv·hs = {kvWidth} (k, v).");
        return ((int)width, (int)kvWidth);
    }

    /// <summary>Throws unless an output's row stride holds a whole row of A = H·hs columns.</summary>
    public static void OutputStride(string kernel, int stride, int width, string what)
    {
        if (stride < width)
            throw new ArgumentException($"{kernel}: the row stride of {what}, {stride}, must be at least H·hs = {width}.");
    }

    /// <summary>Elements a strided [rows, ·] operand spans: (rows − 1)·stride + A, or 0 for no rows.</summary>
    public static long Strided(long rows, int stride, int width) => rows == 0 ? 0 : (rows - 1) * stride + width;

    /// <summary>The head size the kernels work with: the smallest of 16, 32, 64, 128 that holds hs.</summary>
    public static int Padded(int headSize) => headSize <= 16 ? 16 : headSize <= 32 ? 32 : headSize <= 64 ? 64 : 128;

    /// <summary>The bias table and bucket pointers (both 0 when the table is absent), after checking them.</summary>
    public static (DeviceSpan<float> Table, DeviceSpan<int> Buckets) Bias(string kernel, DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset,
        int queryLength, int keyLength, int heads)
    {
        if (biasTable.Length == 0) return default;
        if (biasTable.Length < heads)
            throw new ArgumentException($"{kernel}: biasTable must hold [numBuckets, H = {heads}] values, the span holds {biasTable.Length}.", nameof(biasTable));
        LaunchChecks.AtLeast(kernel, bucketByOffset, (long)queryLength + keyLength - 1, "[Tq + Tk − 1] (T5RelativeBuckets.Compute)");
        return (biasTable, bucketByOffset);
    }

    /// <summary>The bytes [start, end) a strided operand touches (empty for no rows).</summary>
    public static (ulong Start, ulong End) Extent<T>(DeviceSpan<T> span, long rows, int stride, int width) where T : unmanaged =>
        (span.Address, span.Address + (ulong)(Strided(rows, stride, width) * Unsafe.SizeOf<T>()));

    /// <summary>The bf16 view of a span the generic launchers know to hold bf16 (T is ushort there).</summary>
    public static DeviceSpan<ushort> Bf16<T>(DeviceSpan<T> span) where T : unmanaged => new(span.Address, span.Length);

    /// <summary>Whether two byte ranges share a byte (an empty range shares none).</summary>
    public static bool Overlap((ulong Start, ulong End) a, (ulong Start, ulong End) b) =>
        a.Start < a.End && b.Start < b.End && a.Start < b.End && b.Start < a.End;

    public static bool OverlapsAny((ulong Start, ulong End) written, ReadOnlySpan<(ulong Start, ulong End)> inputs)
    {
        foreach (var input in inputs)
            if (Overlap(written, input)) return true;
        return false;
    }

    public static int Tiles(int length, int tile) => (length + tile - 1) / tile;
}

/// <summary>
/// The bf16 tensor-core kernels of kernels/attention_tc.cu (attention_tc_forward_bf16 / _backward_dq_bf16 /
/// _backward_dkv_bf16, hs 64 and 128): same parameters, semantics and outputs as the SIMT kernels, with q, k, v and out
/// bf16 in memory; dout and the probabilities are rounded to bf16 as mma operands, everything else is fp32. The
/// launchers run them for bf16 spans at hs ∈ {64, 128}. Only they take keyValueHeads &lt; heads (grouped-query attention): k, v,
/// dk and dv then hold Hkv heads per row, read and written in place (the dkv kernel sums each kv head's group itself).
/// </summary>
internal static class AttentionTensorCores
{
    /// <summary>Rows of every block's outer tile: 4 warps × 16.</summary>
    public const int OuterTile = 64;

    public static bool Supports(int headSize) => headSize is 64 or 128;

    /// <summary>Rows of a streamed inner tile (keys in the forward and dq kernels, queries in the dkv kernel).</summary>
    public static int InnerTile(int headSize) => headSize == 64 ? 64 : 32;

    /// <summary>
    /// The forward and dq kernels' dynamic shared memory (query_shared_bytes in the kernel): bf16 tiles of 2·64 + 2·BC
    /// rows (stride hs + 8), the bf16 landing buffer of two inner tiles (K, V) and the bias diagonals: 53,760 bytes at hs
    /// 64, 68,992 at hs 128.
    /// </summary>
    public static uint QuerySharedBytes(int headSize)
    {
        int inner = InnerTile(headSize), ld = headSize + 8;
        return (uint)(2 * (2 * OuterTile * ld + 2 * inner * ld) + 2 * 2 * inner * headSize + sizeof(float) * (OuterTile + inner));
    }

    /// <summary>
    /// The dkv kernel's dynamic shared memory (key_shared_bytes): the same tiles, a landing buffer of two inner tiles
    /// sized for fp32 (the streamed dout), the bias diagonals and two per-query vectors: 70,656 bytes at hs 64, 85,888
    /// at hs 128.
    /// </summary>
    public static uint KeySharedBytes(int headSize)
    {
        int inner = InnerTile(headSize), ld = headSize + 8;
        return (uint)(2 * (2 * OuterTile * ld + 2 * inner * ld) + sizeof(float) * (2 * inner * headSize + 3 * OuterTile + inner));
    }
}

/// <summary>
/// attention_forward_hs{16,32,64,128}: out [B, Tq, ·] (row stride outStride) and lse [B, H, Tq] (A = H·hs) with
/// s_ij = scale·(q_i·k_j) + biasTable[bucketByOffset[j − i + Tq − 1]·H + h], over the keys j &lt; keyLengths[b] and,
/// when causal, j ≤ i (BiasedAttentionOps.Forward with RelativePositionOps.Bias). q [B, Tq, ·] with row stride qStride;
/// k, v [B, Tk, ·] with kStride, vStride (a packed qkv buffer: the column slices at 0, A, 2A with stride 3A); head h at
/// columns h·hs. biasTable [numBuckets, H] or absent (no bias; bucketByOffset is then ignored); bucketByOffset
/// [Tq + Tk − 1] from <see cref="T5RelativeBuckets"/>; keyLengths [B] (each in [1, Tk]) or absent (all Tk keys); scale:
/// 1/√hs for GPT-2, 1 for T5 (and Llama, whose RoPE kernel folds 1/√hd into q). One block of 128 threads per
/// (64 query rows, b·H + h); online softmax over key tiles; saves the natural-log logsumexp of every row for
/// <see cref="AttentionBackward"/>.
/// </summary>
internal static class AttentionForward
{
    public const string Name = "attention_forward";
    public const int QueryTile = 64;

    /// <summary>Key-tile rows of the variant for a padded head size.</summary>
    public static int KeyTile(int padded) => padded == 128 ? 32 : 64;

    /// <summary>Q, K, V tiles (stride D + 4), the P tile (stride BC + 8) and the tile's bias diagonals, in bytes.</summary>
    public static uint SharedBytes(int padded)
    {
        int keyTile = KeyTile(padded);
        return (uint)(sizeof(float) * ((QueryTile + 2 * keyTile) * (padded + 4) + QueryTile * (keyTile + 8) + QueryTile + keyTile));
    }

    /// <summary>
    /// T is the storage type of q, k, v and out: float (fp32 in memory: the SIMT kernels) or ushort (bf16 precision with
    /// bf16 in memory: q, k, v read as bf16 and out written as bf16, rounded to nearest even once from the fp32
    /// accumulator; lse fp32; tensor cores at hs 64 and 128 (attention_tc_forward_bf16), the SIMT kernels reading bf16 at
    /// other head sizes (attention_forward_bf16: fp32 arithmetic on the bf16 values)).
    /// </summary>
    public static void Launch<T>(IComputeDevice device, DeviceSpan<T> output, int outStride, DeviceSpan<float> logSumExp,
        DeviceSpan<T> q, int qStride, DeviceSpan<T> k, int kStride, DeviceSpan<T> v, int vStride,
        DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, DeviceSpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal, float scale, int keyValueHeads = 0) where T : unmanaged
    {
        bool bf16 = typeof(T) == typeof(ushort);
        if (keyValueHeads == 0) keyValueHeads = heads;
        var (width, kvWidth) = AttentionShape.Widths(Name, batch, queryLength, keyLength, heads, keyValueHeads, headSize, qStride, kStride, vStride, scale, bf16);
        AttentionShape.OutputStride(Name, outStride, width, "out");
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        LaunchChecks.AtLeast(Name, output, AttentionShape.Strided(queries, outStride, width), "out [B, Tq, ·] at outStride");
        LaunchChecks.AtLeast(Name, logSumExp, queries * heads, "lse [B, H, Tq]");
        LaunchChecks.AtLeast(Name, q, AttentionShape.Strided(queries, qStride, width), "q [B, Tq, ·] at qStride");
        LaunchChecks.AtLeast(Name, k, AttentionShape.Strided(keys, kStride, kvWidth), "k [B, Tk, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, AttentionShape.Strided(keys, vStride, kvWidth), "v [B, Tk, ·] at vStride");
        LaunchChecks.AbsentOrAtLeast(Name, keyLengths, batch, "[B]");
        var (table, buckets) = AttentionShape.Bias(Name, biasTable, bucketByOffset, queryLength, keyLength, heads);
        if (queries == 0) return;
        if (AttentionShape.OverlapsAny(AttentionShape.Extent(output, queries, outStride, width),
                [AttentionShape.Extent(q, queries, qStride, width), AttentionShape.Extent(k, keys, kStride, kvWidth), AttentionShape.Extent(v, keys, vStride, kvWidth)]))
            throw new ArgumentException($"{Name}: output must not alias q, k or v.", nameof(output));
        var grid = new Dim3((uint)AttentionShape.Tiles(queryLength, QueryTile), (uint)(batch * heads));
        int causalFlag = causal ? 1 : 0;
        if (bf16 && AttentionTensorCores.Supports(headSize))
        {
            var tc = new LaunchShape(grid, AttentionShape.Threads, AttentionTensorCores.QuerySharedBytes(headSize));
            KernelStubs.attention_tc_forward_bf16(device, headSizeTile: headSize, tc,
                @out: AttentionShape.Bf16(output), lse: logSumExp, q: AttentionShape.Bf16(q), k: AttentionShape.Bf16(k), v: AttentionShape.Bf16(v), table: table, bucket_by_offset: buckets, key_lengths: keyLengths,
                out_stride: outStride, q_stride: qStride, k_stride: kStride, v_stride: vStride, Tq: queryLength, Tk: keyLength, H: heads, Hkv: keyValueHeads, hs: headSize, causal: causalFlag, scale: scale);
            return;
        }
        int padded = AttentionShape.Padded(headSize);
        KernelStubs.attention_forward(device, headSizeTile: padded, new LaunchShape(grid, AttentionShape.Threads, SharedBytes(padded)),
            @out: output, lse: logSumExp, q: q, k: k, v: v, table: table, bucket_by_offset: buckets, key_lengths: keyLengths,
            out_stride: outStride, q_stride: qStride, k_stride: kStride, v_stride: vStride, Tq: queryLength, Tk: keyLength, H: heads, hs: headSize, causal: causalFlag, scale: scale);
    }
}

/// <summary>
/// attention_backward_dq_hs* then attention_backward_dkv_hs*: dq [B, Tq, ·], dk and dv [B, Tk, ·] (each with its row
/// stride; A = H·hs columns of every row overwritten; keys at or past a row's key length, and keys no query sees, get 0)
/// from dout [B, Tq, ·] and the forward's q, k, v, out and lse, with the same bias, key lengths, mask and scale
/// (BiasedAttentionOps.Backward; the bias is frozen: input gradients only). dq, dk, dv may be the column slices of one
/// buffer (GPT-2's dqkv [B·T, 3C]: offsets 0, C, 2C, stride 3C) but must not overlap the inputs. P is recomputed from
/// q, k, the bias and lse; no Tq×Tk matrix and no atomics — bit-reproducible. The first kernel writes dq and
/// D = rowsum(dout ∘ out) into <c>scratch</c> ([B·H·Tq]); the second writes dk and dv.
/// </summary>
internal static class AttentionBackward
{
    public const string Name = "attention_backward";
    /// <summary>Key rows of the dq kernel's tiles and query rows of the dkv kernel's tiles.</summary>
    public const int InnerTile = 32;

    /// <summary>Query rows per block of the dq kernel and key rows per block of the dkv kernel.</summary>
    public static int OuterTile(int padded) => padded == 128 ? 32 : 64;

    /// <summary>dq kernel: Q, dO [BR][D+4], K, V [32][D+4], dS [BR][40], bias diagonals [BR + 32], in bytes.</summary>
    public static uint DqSharedBytes(int padded)
    {
        int outer = OuterTile(padded);
        return (uint)(sizeof(float) * ((2 * outer + 2 * InnerTile) * (padded + 4) + outer * (InnerTile + 8) + outer + InnerTile));
    }

    /// <summary>dkv kernel: K, V [BC][D+4], Q, dO [32][D+4], Pᵀ, dSᵀ [BC][40], lse and D [32], bias diagonals [32 + BC], in bytes.</summary>
    public static uint DkvSharedBytes(int padded)
    {
        int outer = OuterTile(padded);
        return (uint)(sizeof(float) * ((2 * outer + 2 * InnerTile) * (padded + 4) + 2 * outer * (InnerTile + 8) + 2 * InnerTile + InnerTile + outer));
    }

    /// <summary>
    /// T is the storage type of q, k, v and the forward's out: float (fp32 in memory: the SIMT kernels) or ushort (bf16
    /// precision with bf16 in memory, read as the bf16 forward saved them; tensor cores at hs 64 and 128, the SIMT kernels
    /// reading bf16 elsewhere). dout, lse, scratch and dq, dk, dv are fp32 either way (the gradients are summed over
    /// shared prompt rows afterwards).
    /// </summary>
    public static void Launch<T>(IComputeDevice device,
        DeviceSpan<float> dq, int dqStride, DeviceSpan<float> dk, int dkStride, DeviceSpan<float> dv, int dvStride, DeviceSpan<float> dout, int doutStride,
        DeviceSpan<T> q, int qStride, DeviceSpan<T> k, int kStride, DeviceSpan<T> v, int vStride,
        DeviceSpan<T> output, int outStride, DeviceSpan<float> logSumExp, DeviceSpan<float> scratch,
        DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, DeviceSpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal, float scale, int keyValueHeads = 0) where T : unmanaged
    {
        bool bf16 = typeof(T) == typeof(ushort);
        if (keyValueHeads == 0) keyValueHeads = heads;
        var (width, kvWidth) = AttentionShape.Widths(Name, batch, queryLength, keyLength, heads, keyValueHeads, headSize, qStride, kStride, vStride, scale, bf16);
        AttentionShape.OutputStride(Name, dqStride, width, "dq");
        AttentionShape.OutputStride(Name, dkStride, kvWidth, "dk");
        AttentionShape.OutputStride(Name, dvStride, kvWidth, "dv");
        AttentionShape.OutputStride(Name, doutStride, width, "dout");
        AttentionShape.OutputStride(Name, outStride, width, "out");
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        LaunchChecks.AtLeast(Name, dq, AttentionShape.Strided(queries, dqStride, width), "dq [B, Tq, ·] at dqStride");
        LaunchChecks.AtLeast(Name, dk, AttentionShape.Strided(keys, dkStride, kvWidth), "dk [B, Tk, ·] at dkStride");
        LaunchChecks.AtLeast(Name, dv, AttentionShape.Strided(keys, dvStride, kvWidth), "dv [B, Tk, ·] at dvStride");
        LaunchChecks.AtLeast(Name, dout, AttentionShape.Strided(queries, doutStride, width), "dout [B, Tq, ·] at doutStride");
        LaunchChecks.AtLeast(Name, q, AttentionShape.Strided(queries, qStride, width), "q [B, Tq, ·] at qStride");
        LaunchChecks.AtLeast(Name, k, AttentionShape.Strided(keys, kStride, kvWidth), "k [B, Tk, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, AttentionShape.Strided(keys, vStride, kvWidth), "v [B, Tk, ·] at vStride");
        LaunchChecks.AtLeast(Name, output, AttentionShape.Strided(queries, outStride, width), "out [B, Tq, ·] at outStride");
        LaunchChecks.AtLeast(Name, logSumExp, queries * heads, "lse [B, H, Tq]");
        LaunchChecks.AtLeast(Name, scratch, queries * heads, "[B·H·Tq]");
        LaunchChecks.AbsentOrAtLeast(Name, keyLengths, batch, "[B]");
        var (table, buckets) = AttentionShape.Bias(Name, biasTable, bucketByOffset, queryLength, keyLength, heads);
        if (batch == 0) return;
        ulong dqPtr = dq.Address, dkPtr = dk.Address, dvPtr = dv.Address;
        bool hasQueries = queries > 0;  // with Tq = 0 the query-side spans may all be absent (address 0)
        if (dkPtr == dvPtr || (hasQueries && (dqPtr == dkPtr || dqPtr == dvPtr)))
            throw new ArgumentException($"{Name}: dq, dk and dv must be different buffers (or different column slices of one).", nameof(dq));
        // The outputs may interleave with one another (column slices of one buffer), never with what both kernels read.
        ReadOnlySpan<(ulong Start, ulong End)> read =
        [
            AttentionShape.Extent(dout, queries, doutStride, width), AttentionShape.Extent(q, queries, qStride, width),
            AttentionShape.Extent(k, keys, kStride, kvWidth), AttentionShape.Extent(v, keys, vStride, kvWidth),
            AttentionShape.Extent(output, queries, outStride, width),
        ];
        if (AttentionShape.OverlapsAny(AttentionShape.Extent(dq, queries, dqStride, width), read) || AttentionShape.OverlapsAny(AttentionShape.Extent(dk, keys, dkStride, kvWidth), read)
            || AttentionShape.OverlapsAny(AttentionShape.Extent(dv, keys, dvStride, kvWidth), read))
            throw new ArgumentException($"{Name}: dq, dk and dv must not alias dout, q, k, v or out (both kernels read them).", nameof(dq));
        int causalFlag = causal ? 1 : 0;
        uint headBlocks = (uint)(batch * heads);
        if (bf16 && AttentionTensorCores.Supports(headSize))
        {
            const int tile = AttentionTensorCores.OuterTile;
            var dqShape = new LaunchShape(new Dim3((uint)AttentionShape.Tiles(queryLength, tile), headBlocks), AttentionShape.Threads,
                AttentionTensorCores.QuerySharedBytes(headSize));
            // The dkv kernel: one block per (key tile, b·Hkv + kv head), each summing its group's query heads.
            var dkvShape = new LaunchShape(new Dim3((uint)AttentionShape.Tiles(keyLength, tile), (uint)(batch * keyValueHeads)), AttentionShape.Threads,
                AttentionTensorCores.KeySharedBytes(headSize));
            DeviceSpan<ushort> q16 = AttentionShape.Bf16(q), k16 = AttentionShape.Bf16(k), v16 = AttentionShape.Bf16(v), out16 = AttentionShape.Bf16(output);
            if (hasQueries)
                KernelStubs.attention_tc_backward_dq_bf16(device, headSizeTile: headSize, dqShape,
                    dq: dq, dk: dk, dv: dv, dsum: scratch, dout: dout, @out: out16, lse: logSumExp, q: q16, k: k16, v: v16,
                    table: table, bucket_by_offset: buckets, key_lengths: keyLengths, dq_stride: dqStride, dk_stride: dkStride, dv_stride: dvStride,
                    dout_stride: doutStride, out_stride: outStride, q_stride: qStride, k_stride: kStride, v_stride: vStride,
                    Tq: queryLength, Tk: keyLength, H: heads, Hkv: keyValueHeads, hs: headSize, causal: causalFlag, scale: scale);
            KernelStubs.attention_tc_backward_dkv_bf16(device, headSizeTile: headSize, dkvShape,
                dq: dq, dk: dk, dv: dv, dsum: scratch, dout: dout, @out: out16, lse: logSumExp, q: q16, k: k16, v: v16,
                table: table, bucket_by_offset: buckets, key_lengths: keyLengths, dq_stride: dqStride, dk_stride: dkStride, dv_stride: dvStride,
                dout_stride: doutStride, out_stride: outStride, q_stride: qStride, k_stride: kStride, v_stride: vStride,
                Tq: queryLength, Tk: keyLength, H: heads, Hkv: keyValueHeads, hs: headSize, causal: causalFlag, scale: scale);
            return;
        }
        int padded = AttentionShape.Padded(headSize), outer = OuterTile(padded);
        var dqSimt = new LaunchShape(new Dim3((uint)AttentionShape.Tiles(queryLength, outer), headBlocks), AttentionShape.Threads, DqSharedBytes(padded));
        var dkvSimt = new LaunchShape(new Dim3((uint)AttentionShape.Tiles(keyLength, outer), headBlocks), AttentionShape.Threads, DkvSharedBytes(padded));
        // Both kernels take one parameter list (each ignores the other's outputs).
        if (hasQueries)
            KernelStubs.attention_backward_dq(device, headSizeTile: padded, dqSimt,
                dq: dq, dk: dk, dv: dv, dsum: scratch, dout: dout, @out: output, lse: logSumExp, q: q, k: k, v: v,
                table: table, bucket_by_offset: buckets, key_lengths: keyLengths, dq_stride: dqStride, dk_stride: dkStride, dv_stride: dvStride,
                dout_stride: doutStride, out_stride: outStride, q_stride: qStride, k_stride: kStride, v_stride: vStride,
                Tq: queryLength, Tk: keyLength, H: heads, hs: headSize, causal: causalFlag, scale: scale);
        KernelStubs.attention_backward_dkv(device, headSizeTile: padded, dkvSimt,
            dq: dq, dk: dk, dv: dv, dsum: scratch, dout: dout, @out: output, lse: logSumExp, q: q, k: k, v: v,
            table: table, bucket_by_offset: buckets, key_lengths: keyLengths, dq_stride: dqStride, dk_stride: dkStride, dv_stride: dvStride,
            dout_stride: doutStride, out_stride: outStride, q_stride: qStride, k_stride: kStride, v_stride: vStride,
            Tq: queryLength, Tk: keyLength, H: heads, hs: headSize, causal: causalFlag, scale: scale);
    }
}

/// <summary>
/// GPT-2's attention on its fused layout, through <see cref="AttentionForward"/> / <see cref="AttentionBackward"/>:
/// qkv [B·T, 3C] read as q, k, v (the column slices at 0, C, 2C, row stride 3C), out and dout [B·T, C], dqkv [B·T, 3C]
/// written the same way as qkv (every element); causal, no bias, no key lengths, scores times scale (1/√hs unless given); lse and the
/// backward's scratch [B, H, T]. Mirrors <see cref="AttentionOps"/>.
/// </summary>
internal static class FusedQkvAttention
{
    /// <summary>Validates C and H; returns hs = C / H.</summary>
    public static int HeadSize(string kernel, int channels, int heads)
    {
        if (heads < 1 || channels < 1 || channels % heads != 0)
            throw new ArgumentException($"{kernel}: {channels} channels are not a positive multiple of {heads} heads.");
        return channels / heads;
    }

    /// <summary>out [B·T, C] and lse [B, H, T] from qkv [B·T, 3C]; qkv and out fp32 (T float) or bf16 (T ushort: bf16 precision).</summary>
    public static void Forward<T>(IComputeDevice device, DeviceSpan<T> output, DeviceSpan<float> logSumExp, DeviceSpan<T> qkv,
        int batch, int sequence, int channels, int heads, float? scale = null) where T : unmanaged
    {
        int hs = HeadSize(AttentionForward.Name, channels, heads), c3 = 3 * channels;
        LaunchChecks.AtLeast(AttentionForward.Name, qkv, (long)batch * sequence * c3, "qkv [B·T, 3C]");
        if (sequence == 0) return;
        AttentionForward.Launch(device, output, channels, logSumExp, qkv, c3, Slice(qkv, channels), c3, Slice(qkv, 2 * channels), c3,
            default, default, default, batch, sequence, sequence, heads, hs, causal: true, scale ?? 1f / MathF.Sqrt(hs));
    }

    /// <summary>
    /// dqkv [B·T, 3C] (fp32, overwritten) from dout [B·T, C] (fp32) and the forward's qkv and out (fp32, or bf16 for the
    /// bf16 forward: T ushort) and lse; scratch [B·H·T].
    /// </summary>
    public static void Backward<T>(IComputeDevice device, DeviceSpan<float> dqkv, DeviceSpan<float> dout, DeviceSpan<T> qkv, DeviceSpan<T> output,
        DeviceSpan<float> logSumExp, DeviceSpan<float> scratch, int batch, int sequence, int channels, int heads, float? scale = null) where T : unmanaged
    {
        int hs = HeadSize(AttentionBackward.Name, channels, heads), c3 = 3 * channels;
        LaunchChecks.AtLeast(AttentionBackward.Name, dqkv, (long)batch * sequence * c3, "dqkv [B·T, 3C]");
        LaunchChecks.AtLeast(AttentionBackward.Name, qkv, (long)batch * sequence * c3, "qkv [B·T, 3C]");
        if (sequence == 0) return;
        AttentionBackward.Launch(device, dqkv, c3, Slice(dqkv, channels), c3, Slice(dqkv, 2 * channels), c3, dout, channels,
            qkv, c3, Slice(qkv, channels), c3, Slice(qkv, 2 * channels), c3, output, channels, logSumExp, scratch,
            default, default, default, batch, sequence, sequence, heads, hs, causal: true, scale ?? 1f / MathF.Sqrt(hs));
    }

    // The column slice at `offset` of a [rows, 3C] buffer, or an absent span for an empty buffer (no rows).
    private static DeviceSpan<T> Slice<T>(DeviceSpan<T> buffer, int offset) where T : unmanaged => buffer.Length > offset ? buffer.Slice(offset) : default;
}

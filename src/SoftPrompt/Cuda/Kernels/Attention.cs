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

/// <summary>Shape checks, pointers and the padded-head-size dispatch shared by the attention launchers.</summary>
internal static class AttentionShape
{
    public const int Threads = 128;
    public const int MaxHeadSize = 128;

    /// <summary>Validates the shape, scale and input strides; returns A = H·hs.</summary>
    public static int Width(string kernel, int batch, int queryLength, int keyLength, int heads, int headSize, int qStride, int kStride, int vStride, float scale)
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
        long width = (long)heads * headSize;
        if (qStride < width || kStride < width || vStride < width)
            throw new ArgumentException($"{kernel}: row strides q {qStride}, k {kStride}, v {vStride} must each be at least H·hs = {width}.");
        return (int)width;
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
    public static void Bias(string kernel, DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, int queryLength, int keyLength, int heads,
        out ulong table, out ulong buckets)
    {
        table = buckets = 0;
        if (biasTable.Length == 0) return;
        if (biasTable.Length < heads)
            throw new ArgumentException($"{kernel}: biasTable must hold [numBuckets, H = {heads}] values, the span holds {biasTable.Length}.", nameof(biasTable));
        LaunchChecks.AtLeast(kernel, bucketByOffset, (long)queryLength + keyLength - 1, "[Tq + Tk − 1] (T5RelativeBuckets.Compute)");
        table = biasTable.Address;
        buckets = bucketByOffset.Address;
    }

    /// <summary>The bytes [start, end) a strided operand touches (empty for no rows).</summary>
    public static (ulong Start, ulong End) Extent(DeviceSpan<float> span, long rows, int stride, int width) =>
        (span.Address, span.Address + (ulong)(Strided(rows, stride, width) * sizeof(float)));

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
internal static unsafe class AttentionForward
{
    public const string Name = "attention_forward";
    public const string Hs16 = Name + "_hs16", Hs32 = Name + "_hs32", Hs64 = Name + "_hs64", Hs128 = Name + "_hs128";
    public const int QueryTile = 64;
    private const int ArgCount = 18;

    /// <summary>Key-tile rows of the variant for a padded head size.</summary>
    public static int KeyTile(int padded) => padded == 128 ? 32 : 64;

    /// <summary>Q, K, V tiles (stride D + 4), the P tile (stride BC + 8) and the tile's bias diagonals, in bytes.</summary>
    public static uint SharedBytes(int padded)
    {
        int keyTile = KeyTile(padded);
        return (uint)(sizeof(float) * ((QueryTile + 2 * keyTile) * (padded + 4) + QueryTile * (keyTile + 8) + QueryTile + keyTile));
    }

    // out, lse, q, k, v, table, bucket_by_offset, key_lengths, out_stride, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale
    [KernelSignature(Hs16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Hs32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Hs64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Hs128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> output, int outStride, DeviceSpan<float> logSumExp,
        DeviceSpan<float> q, int qStride, DeviceSpan<float> k, int kStride, DeviceSpan<float> v, int vStride,
        DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, DeviceSpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal, float scale)
    {
        int width = AttentionShape.Width(Name, batch, queryLength, keyLength, heads, headSize, qStride, kStride, vStride, scale);
        AttentionShape.OutputStride(Name, outStride, width, "out");
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        LaunchChecks.AtLeast(Name, output, AttentionShape.Strided(queries, outStride, width), "out [B, Tq, ·] at outStride");
        LaunchChecks.AtLeast(Name, logSumExp, queries * heads, "lse [B, H, Tq]");
        LaunchChecks.AtLeast(Name, q, AttentionShape.Strided(queries, qStride, width), "q [B, Tq, ·] at qStride");
        LaunchChecks.AtLeast(Name, k, AttentionShape.Strided(keys, kStride, width), "k [B, Tk, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, AttentionShape.Strided(keys, vStride, width), "v [B, Tk, ·] at vStride");
        LaunchChecks.AbsentOrAtLeast(Name, keyLengths, batch, "[B]");
        AttentionShape.Bias(Name, biasTable, bucketByOffset, queryLength, keyLength, heads, out ulong tablePtr, out ulong bucketPtr);
        if (queries == 0) return;
        if (AttentionShape.OverlapsAny(AttentionShape.Extent(output, queries, outStride, width),
                [AttentionShape.Extent(q, queries, qStride, width), AttentionShape.Extent(k, keys, kStride, width), AttentionShape.Extent(v, keys, vStride, width)]))
            throw new ArgumentException($"{Name}: output must not alias q, k or v.", nameof(output));
        ulong outPtr = output.Address, lsePtr = logSumExp.Address, qPtr = q.Address, kPtr = k.Address, vPtr = v.Address;
        ulong lengthsPtr = keyLengths.Length == 0 ? 0 : keyLengths.Address;
        int causalFlag = causal ? 1 : 0;

        int padded = AttentionShape.Padded(headSize);
        string kernel = padded switch { 16 => Hs16, 32 => Hs32, 64 => Hs64, _ => Hs128 };
        void** args = stackalloc void*[ArgCount];
        args[0] = &outPtr;
        args[1] = &lsePtr;
        args[2] = &qPtr;
        args[3] = &kPtr;
        args[4] = &vPtr;
        args[5] = &tablePtr;
        args[6] = &bucketPtr;
        args[7] = &lengthsPtr;
        args[8] = &outStride;
        args[9] = &qStride;
        args[10] = &kStride;
        args[11] = &vStride;
        args[12] = &queryLength;
        args[13] = &keyLength;
        args[14] = &heads;
        args[15] = &headSize;
        args[16] = &causalFlag;
        args[17] = &scale;
        var grid = new Dim3((uint)AttentionShape.Tiles(queryLength, QueryTile), (uint)(batch * heads));
        device.Launch(device.GetKernel(kernel), grid, AttentionShape.Threads, SharedBytes(padded), args, ArgCount);
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
internal static unsafe class AttentionBackward
{
    public const string Name = "attention_backward";
    public const string Dq16 = Name + "_dq_hs16", Dq32 = Name + "_dq_hs32", Dq64 = Name + "_dq_hs64", Dq128 = Name + "_dq_hs128";
    public const string Dkv16 = Name + "_dkv_hs16", Dkv32 = Name + "_dkv_hs32", Dkv64 = Name + "_dkv_hs64", Dkv128 = Name + "_dkv_hs128";
    /// <summary>Key rows of the dq kernel's tiles and query rows of the dkv kernel's tiles.</summary>
    public const int InnerTile = 32;
    private const int ArgCount = 27;

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

    // Both kernels: dq, dk, dv, dsum, dout, out, lse, q, k, v, table, bucket_by_offset, key_lengths,
    // dq_stride, dk_stride, dv_stride, dout_stride, out_stride, q_stride, k_stride, v_stride, Tq, Tk, H, hs, causal, scale
    [KernelSignature(Dq16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dq32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dq64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dq128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device,
        DeviceSpan<float> dq, int dqStride, DeviceSpan<float> dk, int dkStride, DeviceSpan<float> dv, int dvStride, DeviceSpan<float> dout, int doutStride,
        DeviceSpan<float> q, int qStride, DeviceSpan<float> k, int kStride, DeviceSpan<float> v, int vStride,
        DeviceSpan<float> output, int outStride, DeviceSpan<float> logSumExp, DeviceSpan<float> scratch,
        DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, DeviceSpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal, float scale)
    {
        int width = AttentionShape.Width(Name, batch, queryLength, keyLength, heads, headSize, qStride, kStride, vStride, scale);
        AttentionShape.OutputStride(Name, dqStride, width, "dq");
        AttentionShape.OutputStride(Name, dkStride, width, "dk");
        AttentionShape.OutputStride(Name, dvStride, width, "dv");
        AttentionShape.OutputStride(Name, doutStride, width, "dout");
        AttentionShape.OutputStride(Name, outStride, width, "out");
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        LaunchChecks.AtLeast(Name, dq, AttentionShape.Strided(queries, dqStride, width), "dq [B, Tq, ·] at dqStride");
        LaunchChecks.AtLeast(Name, dk, AttentionShape.Strided(keys, dkStride, width), "dk [B, Tk, ·] at dkStride");
        LaunchChecks.AtLeast(Name, dv, AttentionShape.Strided(keys, dvStride, width), "dv [B, Tk, ·] at dvStride");
        LaunchChecks.AtLeast(Name, dout, AttentionShape.Strided(queries, doutStride, width), "dout [B, Tq, ·] at doutStride");
        LaunchChecks.AtLeast(Name, q, AttentionShape.Strided(queries, qStride, width), "q [B, Tq, ·] at qStride");
        LaunchChecks.AtLeast(Name, k, AttentionShape.Strided(keys, kStride, width), "k [B, Tk, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, AttentionShape.Strided(keys, vStride, width), "v [B, Tk, ·] at vStride");
        LaunchChecks.AtLeast(Name, output, AttentionShape.Strided(queries, outStride, width), "out [B, Tq, ·] at outStride");
        LaunchChecks.AtLeast(Name, logSumExp, queries * heads, "lse [B, H, Tq]");
        LaunchChecks.AtLeast(Name, scratch, queries * heads, "[B·H·Tq]");
        LaunchChecks.AbsentOrAtLeast(Name, keyLengths, batch, "[B]");
        AttentionShape.Bias(Name, biasTable, bucketByOffset, queryLength, keyLength, heads, out ulong tablePtr, out ulong bucketPtr);
        if (batch == 0) return;
        ulong dqPtr = dq.Address, dkPtr = dk.Address, dvPtr = dv.Address, doutPtr = dout.Address, qPtr = q.Address, kPtr = k.Address,
              vPtr = v.Address, outPtr = output.Address, lsePtr = logSumExp.Address, scratchPtr = scratch.Address;
        bool hasQueries = queries > 0;  // with Tq = 0 the query-side spans may all be absent (address 0)
        if (dkPtr == dvPtr || (hasQueries && (dqPtr == dkPtr || dqPtr == dvPtr)))
            throw new ArgumentException($"{Name}: dq, dk and dv must be different buffers (or different column slices of one).", nameof(dq));
        // The outputs may interleave with one another (column slices of one buffer), never with what both kernels read.
        ReadOnlySpan<(ulong Start, ulong End)> read =
        [
            AttentionShape.Extent(dout, queries, doutStride, width), AttentionShape.Extent(q, queries, qStride, width),
            AttentionShape.Extent(k, keys, kStride, width), AttentionShape.Extent(v, keys, vStride, width),
            AttentionShape.Extent(output, queries, outStride, width),
        ];
        if (AttentionShape.OverlapsAny(AttentionShape.Extent(dq, queries, dqStride, width), read) || AttentionShape.OverlapsAny(AttentionShape.Extent(dk, keys, dkStride, width), read)
            || AttentionShape.OverlapsAny(AttentionShape.Extent(dv, keys, dvStride, width), read))
            throw new ArgumentException($"{Name}: dq, dk and dv must not alias dout, q, k, v or out (both kernels read them).", nameof(dq));
        ulong lengthsPtr = keyLengths.Length == 0 ? 0 : keyLengths.Address;
        int causalFlag = causal ? 1 : 0;

        int padded = AttentionShape.Padded(headSize);
        int outer = OuterTile(padded);
        // One parameter list for both kernels (each ignores the other's outputs).
        void** args = stackalloc void*[ArgCount];
        args[0] = &dqPtr;
        args[1] = &dkPtr;
        args[2] = &dvPtr;
        args[3] = &scratchPtr;
        args[4] = &doutPtr;
        args[5] = &outPtr;
        args[6] = &lsePtr;
        args[7] = &qPtr;
        args[8] = &kPtr;
        args[9] = &vPtr;
        args[10] = &tablePtr;
        args[11] = &bucketPtr;
        args[12] = &lengthsPtr;
        args[13] = &dqStride;
        args[14] = &dkStride;
        args[15] = &dvStride;
        args[16] = &doutStride;
        args[17] = &outStride;
        args[18] = &qStride;
        args[19] = &kStride;
        args[20] = &vStride;
        args[21] = &queryLength;
        args[22] = &keyLength;
        args[23] = &heads;
        args[24] = &headSize;
        args[25] = &causalFlag;
        args[26] = &scale;

        if (hasQueries)
        {
            string dqKernel = padded switch { 16 => Dq16, 32 => Dq32, 64 => Dq64, _ => Dq128 };
            var dqGrid = new Dim3((uint)AttentionShape.Tiles(queryLength, outer), (uint)(batch * heads));
            device.Launch(device.GetKernel(dqKernel), dqGrid, AttentionShape.Threads, DqSharedBytes(padded), args, ArgCount);
        }
        string dkvKernel = padded switch { 16 => Dkv16, 32 => Dkv32, 64 => Dkv64, _ => Dkv128 };
        var dkvGrid = new Dim3((uint)AttentionShape.Tiles(keyLength, outer), (uint)(batch * heads));
        device.Launch(device.GetKernel(dkvKernel), dkvGrid, AttentionShape.Threads, DkvSharedBytes(padded), args, ArgCount);
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

    /// <summary>out [B·T, C] and lse [B, H, T] from qkv [B·T, 3C].</summary>
    public static void Forward(IComputeDevice device, DeviceSpan<float> output, DeviceSpan<float> logSumExp, DeviceSpan<float> qkv,
        int batch, int sequence, int channels, int heads, float? scale = null)
    {
        int hs = HeadSize(AttentionForward.Name, channels, heads), c3 = 3 * channels;
        LaunchChecks.AtLeast(AttentionForward.Name, qkv, (long)batch * sequence * c3, "qkv [B·T, 3C]");
        if (sequence == 0) return;
        AttentionForward.Launch(device, output, channels, logSumExp, qkv, c3, Slice(qkv, channels), c3, Slice(qkv, 2 * channels), c3,
            default, default, default, batch, sequence, sequence, heads, hs, causal: true, scale ?? 1f / MathF.Sqrt(hs));
    }

    /// <summary>dqkv [B·T, 3C] (overwritten) from dout [B·T, C] and the forward's qkv, out and lse; scratch [B·H·T].</summary>
    public static void Backward(IComputeDevice device, DeviceSpan<float> dqkv, DeviceSpan<float> dout, DeviceSpan<float> qkv, DeviceSpan<float> output,
        DeviceSpan<float> logSumExp, DeviceSpan<float> scratch, int batch, int sequence, int channels, int heads, float? scale = null)
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
    private static DeviceSpan<float> Slice(DeviceSpan<float> buffer, int offset) => buffer.Length > offset ? buffer.Slice(offset) : default;
}

using SoftPrompt.Models.T5;

namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/biased_attention.cu: T5 attention (mirror of Cpu/BiasedAttentionOps with the bias of
// Cpu/RelativePositionOps, from Models/T5/T5RelativeBuckets, looked up on the fly), FlashAttention-2 style in fp32. One kernel family serves encoder
// self-attention (bidirectional bias + key lengths), decoder self-attention (causal + bias) and cross-attention
// (Tq ≠ Tk, key lengths, no bias). Every kernel is instantiated for the head size padded to 16, 32, 64 or 128; the
// launcher picks the variant, the tile sizes and the dynamic shared memory (at most 78,336 bytes, so sm_80/86 parts run
// them too). Spans may be longer than needed (slices of capacity-sized plans); a span of length 0 means "absent" where
// documented.

/// <summary>Shape checks, pointers and the padded-head-size dispatch shared by the biased attention launchers.</summary>
internal static class BiasedAttentionShape
{
    public const int Threads = 128;
    public const int MaxHeadSize = 128;

    /// <summary>Validates the shape and strides; returns A = H·hs.</summary>
    public static int Width(string kernel, int batch, int queryLength, int keyLength, int heads, int headSize, int qStride, int kStride, int vStride)
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
        long width = (long)heads * headSize;
        if (qStride < width || kStride < width || vStride < width)
            throw new ArgumentException($"{kernel}: row strides q {qStride}, k {kStride}, v {vStride} must each be at least H·hs = {width}.");
        return (int)width;
    }

    /// <summary>Elements a strided [rows, ·] operand spans: (rows − 1)·stride + A, or 0 for no rows.</summary>
    public static long Strided(long rows, int stride, int width) => rows == 0 ? 0 : (rows - 1) * stride + width;

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

    public static int Tiles(int length, int tile) => (length + tile - 1) / tile;
}

/// <summary>
/// biased_attention_forward_hs{16,32,64,128}: out [B, Tq, A] and lse [B, H, Tq] (A = H·hs) with
/// s_ij = q_i·k_j + biasTable[bucketByOffset[j − i + Tq − 1]·H + h] (no 1/√hs scale), over the keys j &lt; keyLengths[b]
/// and, when causal, j ≤ i (BiasedAttentionOps.Forward with RelativePositionOps.Bias). q [B, Tq, ·] with row stride
/// qStride; k, v [B, Tk, ·] with kStride, vStride (packed qkv: the column slices at 0, A, 2A with stride 3A); head h at
/// columns h·hs. biasTable [numBuckets, H] or absent (no bias; bucketByOffset is then ignored); bucketByOffset
/// [Tq + Tk − 1] from <see cref="T5RelativeBuckets"/>; keyLengths [B] (each in [1, Tk]) or absent (all Tk keys).
/// One block of 128 threads per (64 query rows, b·H + h); online softmax over key tiles; saves the natural-log
/// logsumexp of every row for <see cref="BiasedAttentionBackward"/>.
/// </summary>
internal static unsafe class BiasedAttentionForward
{
    public const string Name = "biased_attention_forward";
    public const string Hs16 = Name + "_hs16", Hs32 = Name + "_hs32", Hs64 = Name + "_hs64", Hs128 = Name + "_hs128";
    public const int QueryTile = 64;

    /// <summary>Key-tile rows of the variant for a padded head size.</summary>
    public static int KeyTile(int padded) => padded == 128 ? 32 : 64;

    /// <summary>Q, K, V tiles (stride D + 4), the P tile (stride BC + 8) and the tile's bias diagonals, in bytes.</summary>
    public static uint SharedBytes(int padded)
    {
        int keyTile = KeyTile(padded);
        return (uint)(sizeof(float) * ((QueryTile + 2 * keyTile) * (padded + 4) + QueryTile * (keyTile + 8) + QueryTile + keyTile));
    }

    [KernelSignature(Hs16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Hs32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Hs64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Hs128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> output, DeviceSpan<float> logSumExp,
        DeviceSpan<float> q, int qStride, DeviceSpan<float> k, int kStride, DeviceSpan<float> v, int vStride,
        DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, DeviceSpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal)
    {
        int width = BiasedAttentionShape.Width(Name, batch, queryLength, keyLength, heads, headSize, qStride, kStride, vStride);
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        LaunchChecks.AtLeast(Name, output, queries * width, "out [B, Tq, H·hs]");
        LaunchChecks.AtLeast(Name, logSumExp, queries * heads, "lse [B, H, Tq]");
        LaunchChecks.AtLeast(Name, q, BiasedAttentionShape.Strided(queries, qStride, width), "q [B, Tq, ·] at qStride");
        LaunchChecks.AtLeast(Name, k, BiasedAttentionShape.Strided(keys, kStride, width), "k [B, Tk, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, BiasedAttentionShape.Strided(keys, vStride, width), "v [B, Tk, ·] at vStride");
        LaunchChecks.AbsentOrAtLeast(Name, keyLengths, batch, "[B]");
        BiasedAttentionShape.Bias(Name, biasTable, bucketByOffset, queryLength, keyLength, heads, out ulong tablePtr, out ulong bucketPtr);
        if (queries == 0) return;
        ulong outPtr = output.Address, lsePtr = logSumExp.Address, qPtr = q.Address, kPtr = k.Address, vPtr = v.Address;
        if (outPtr == qPtr || outPtr == kPtr || outPtr == vPtr)
            throw new ArgumentException($"{Name}: output must not alias q, k or v.", nameof(output));
        ulong lengthsPtr = keyLengths.Length == 0 ? 0 : keyLengths.Address;
        int causalFlag = causal ? 1 : 0;

        int padded = AttentionShape.Padded(headSize);
        string kernel = padded switch { 16 => Hs16, 32 => Hs32, 64 => Hs64, _ => Hs128 };
        void** args = stackalloc void*[16];
        args[0] = &outPtr;
        args[1] = &lsePtr;
        args[2] = &qPtr;
        args[3] = &kPtr;
        args[4] = &vPtr;
        args[5] = &tablePtr;
        args[6] = &bucketPtr;
        args[7] = &lengthsPtr;
        args[8] = &qStride;
        args[9] = &kStride;
        args[10] = &vStride;
        args[11] = &queryLength;
        args[12] = &keyLength;
        args[13] = &heads;
        args[14] = &headSize;
        args[15] = &causalFlag;
        var grid = new Dim3((uint)BiasedAttentionShape.Tiles(queryLength, QueryTile), (uint)(batch * heads));
        device.Launch(device.GetKernel(kernel), grid, BiasedAttentionShape.Threads, SharedBytes(padded), args, 16);
    }
}

/// <summary>
/// biased_attention_backward_dq_hs* then biased_attention_backward_dkv_hs*: dq [B, Tq, A], dk and dv [B, Tk, A] (A = H·hs,
/// every element overwritten; keys at or past a row's key length, and keys no query sees, get 0) from dout [B, Tq, A]
/// and the forward's q, k, v, out and lse, with the same bias, key lengths and mask (BiasedAttentionOps.Backward; the
/// bias is frozen: input gradients only). P is recomputed from q, k, the bias and lse; no Tq×Tk matrix and no atomics —
/// bit-reproducible. The first kernel writes dq and D = rowsum(dout ∘ out) into <c>scratch</c> ([B·H·Tq]); the second
/// writes dk and dv. Outputs must not alias the inputs or each other.
/// </summary>
internal static unsafe class BiasedAttentionBackward
{
    public const string Name = "biased_attention_backward";
    public const string Dq16 = Name + "_dq_hs16", Dq32 = Name + "_dq_hs32", Dq64 = Name + "_dq_hs64", Dq128 = Name + "_dq_hs128";
    public const string Dkv16 = Name + "_dkv_hs16", Dkv32 = Name + "_dkv_hs32", Dkv64 = Name + "_dkv_hs64", Dkv128 = Name + "_dkv_hs128";
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

    [KernelSignature(Dq16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dq32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dq64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dq128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dkv16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dkv32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dkv64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    [KernelSignature(Dkv128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int*), typeof(int*), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dq, DeviceSpan<float> dk, DeviceSpan<float> dv, DeviceSpan<float> dout,
        DeviceSpan<float> q, int qStride, DeviceSpan<float> k, int kStride, DeviceSpan<float> v, int vStride,
        DeviceSpan<float> output, DeviceSpan<float> logSumExp, DeviceSpan<float> scratch,
        DeviceSpan<float> biasTable, DeviceSpan<int> bucketByOffset, DeviceSpan<int> keyLengths,
        int batch, int queryLength, int keyLength, int heads, int headSize, bool causal)
    {
        int width = BiasedAttentionShape.Width(Name, batch, queryLength, keyLength, heads, headSize, qStride, kStride, vStride);
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        LaunchChecks.AtLeast(Name, dq, queries * width, "dq [B, Tq, H·hs]");
        LaunchChecks.AtLeast(Name, dk, keys * width, "dk [B, Tk, H·hs]");
        LaunchChecks.AtLeast(Name, dv, keys * width, "dv [B, Tk, H·hs]");
        LaunchChecks.AtLeast(Name, dout, queries * width, "dout [B, Tq, H·hs]");
        LaunchChecks.AtLeast(Name, q, BiasedAttentionShape.Strided(queries, qStride, width), "q [B, Tq, ·] at qStride");
        LaunchChecks.AtLeast(Name, k, BiasedAttentionShape.Strided(keys, kStride, width), "k [B, Tk, ·] at kStride");
        LaunchChecks.AtLeast(Name, v, BiasedAttentionShape.Strided(keys, vStride, width), "v [B, Tk, ·] at vStride");
        LaunchChecks.AtLeast(Name, output, queries * width, "out [B, Tq, H·hs]");
        LaunchChecks.AtLeast(Name, logSumExp, queries * heads, "lse [B, H, Tq]");
        LaunchChecks.AtLeast(Name, scratch, queries * heads, "[B·H·Tq]");
        LaunchChecks.AbsentOrAtLeast(Name, keyLengths, batch, "[B]");
        BiasedAttentionShape.Bias(Name, biasTable, bucketByOffset, queryLength, keyLength, heads, out ulong tablePtr, out ulong bucketPtr);
        if (batch == 0) return;
        ulong dqPtr = dq.Address, dkPtr = dk.Address, dvPtr = dv.Address, doutPtr = dout.Address, qPtr = q.Address, kPtr = k.Address,
              vPtr = v.Address, outPtr = output.Address, lsePtr = logSumExp.Address, scratchPtr = scratch.Address;
        bool hasQueries = queries > 0;  // with Tq = 0 the query-side spans may all be absent (address 0)
        if (dkPtr == dvPtr || (hasQueries && (dqPtr == dkPtr || dqPtr == dvPtr)))
            throw new ArgumentException($"{Name}: dq, dk and dv must be different buffers.", nameof(dq));
        if ((hasQueries && Aliases(dqPtr, doutPtr, qPtr, kPtr, vPtr, outPtr)) || Aliases(dkPtr, doutPtr, qPtr, kPtr, vPtr, outPtr) || Aliases(dvPtr, doutPtr, qPtr, kPtr, vPtr, outPtr))
            throw new ArgumentException($"{Name}: dq, dk and dv must not alias dout, q, k, v or out (both kernels read them).", nameof(dq));
        ulong lengthsPtr = keyLengths.Length == 0 ? 0 : keyLengths.Address;
        int causalFlag = causal ? 1 : 0;

        int padded = AttentionShape.Padded(headSize);
        int outer = OuterTile(padded);
        void** args = stackalloc void*[19];
        // Shared tail of both kernels' parameter lists: q, k, v, table, buckets, key lengths, strides, shape, causal.
        args[5] = &qPtr;
        args[6] = &kPtr;
        args[7] = &vPtr;
        args[8] = &tablePtr;
        args[9] = &bucketPtr;
        args[10] = &lengthsPtr;
        args[11] = &qStride;
        args[12] = &kStride;
        args[13] = &vStride;
        args[14] = &queryLength;
        args[15] = &keyLength;
        args[16] = &heads;
        args[17] = &headSize;
        args[18] = &causalFlag;

        if (hasQueries)
        {
            args[0] = &dqPtr;
            args[1] = &scratchPtr;
            args[2] = &doutPtr;
            args[3] = &outPtr;
            args[4] = &lsePtr;
            string dqKernel = padded switch { 16 => Dq16, 32 => Dq32, 64 => Dq64, _ => Dq128 };
            var dqGrid = new Dim3((uint)BiasedAttentionShape.Tiles(queryLength, outer), (uint)(batch * heads));
            device.Launch(device.GetKernel(dqKernel), dqGrid, BiasedAttentionShape.Threads, DqSharedBytes(padded), args, 19);
        }

        args[0] = &dkPtr;
        args[1] = &dvPtr;
        args[2] = &doutPtr;
        args[3] = &lsePtr;
        args[4] = &scratchPtr;
        string dkvKernel = padded switch { 16 => Dkv16, 32 => Dkv32, 64 => Dkv64, _ => Dkv128 };
        var dkvGrid = new Dim3((uint)BiasedAttentionShape.Tiles(keyLength, outer), (uint)(batch * heads));
        device.Launch(device.GetKernel(dkvKernel), dkvGrid, BiasedAttentionShape.Threads, DkvSharedBytes(padded), args, 19);
    }

    private static bool Aliases(ulong output, ulong a, ulong b, ulong c, ulong d, ulong e) =>
        output == a || output == b || output == c || output == d || output == e;
}

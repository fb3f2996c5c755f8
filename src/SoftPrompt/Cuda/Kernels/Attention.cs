namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/attention.cu: fused causal multi-head attention (FlashAttention-2 style, fp32).
// Every kernel is instantiated for the head size padded to 16, 32, 64 or 128; the launcher picks the variant, the
// tile sizes and the dynamic shared memory (at most 78,080 bytes, so sm_80/86 parts run them too).
// Spans may be longer than needed (slices of capacity-sized plans); only the first B·T·… elements are used.

/// <summary>Shape checks and the padded-head-size dispatch shared by the attention launchers.</summary>
internal static class AttentionShape
{
    public const int Threads = 128;
    public const int MaxHeadSize = 128;

    /// <summary>Validates B, T, C, H and returns hs = C / H.</summary>
    public static int HeadSize(string kernel, int batch, int sequence, int channels, int heads)
    {
        if (batch < 0 || sequence < 0) throw new ArgumentException($"{kernel}: batch {batch} and sequence {sequence} must not be negative.");
        if (heads < 1 || channels < 1 || channels % heads != 0)
            throw new ArgumentException($"{kernel}: {channels} channels are not a positive multiple of {heads} heads.");
        int headSize = channels / heads;
        if (headSize > MaxHeadSize)
            throw new ArgumentException($"{kernel}: head size {headSize} (C = {channels}, H = {heads}) exceeds the kernels' maximum of {MaxHeadSize}.");
        if ((long)batch * heads > 65_535)
            throw new ArgumentException($"{kernel}: B·H = {(long)batch * heads} exceeds the grid's y limit of 65,535; split the batch.");
        return headSize;
    }

    /// <summary>The head size the kernels work with: the smallest of 16, 32, 64, 128 that holds hs.</summary>
    public static int Padded(int headSize) => headSize <= 16 ? 16 : headSize <= 32 ? 32 : headSize <= 64 ? 64 : 128;

    public static void Require<T>(string kernel, DeviceSpan<T> span, long needed, string what, string parameter) where T : unmanaged
    {
        if (span.Length < needed)
            throw new ArgumentException($"{kernel}: {what} needs {needed} elements, the span holds {span.Length}.", parameter);
    }

    public static int Tiles(int sequence, int tile) => (sequence + tile - 1) / tile;
}

/// <summary>
/// attention_forward_hs{16,32,64,128}: out [B, T, C] and lse [B, H, T] from qkv [B, T, 3C], causal, scale 1/√hs,
/// hs = C/H ≤ 128. One block of 128 threads per (64 query rows, b·H + h); online softmax over key tiles up to the
/// diagonal; saves the natural-log logsumexp of every row for <see cref="AttentionBackward"/>.
/// </summary>
internal static unsafe class AttentionForward
{
    public const string Name = "attention_forward";
    public const string Hs16 = Name + "_hs16", Hs32 = Name + "_hs32", Hs64 = Name + "_hs64", Hs128 = Name + "_hs128";
    public const int QueryTile = 64;

    /// <summary>Key-tile rows of the variant for a padded head size.</summary>
    public static int KeyTile(int padded) => padded == 128 ? 32 : 64;

    /// <summary>Q, K, V tiles (stride D + 4) and the P tile (stride BC + 8), in bytes.</summary>
    public static uint SharedBytes(int padded)
    {
        int keyTile = KeyTile(padded);
        return (uint)(sizeof(float) * ((QueryTile + 2 * keyTile) * (padded + 4) + QueryTile * (keyTile + 8)));
    }

    [KernelSignature(Hs16, typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Hs32, typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Hs64, typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Hs128, typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> output, DeviceSpan<float> logSumExp, DeviceSpan<float> qkv,
        int batch, int sequence, int channels, int heads)
    {
        int headSize = AttentionShape.HeadSize(Name, batch, sequence, channels, heads);
        long rows = (long)batch * sequence;
        AttentionShape.Require(Name, output, rows * channels, "out [B, T, C]", nameof(output));
        AttentionShape.Require(Name, logSumExp, rows * heads, "lse [B, H, T]", nameof(logSumExp));
        AttentionShape.Require(Name, qkv, rows * 3 * channels, "qkv [B, T, 3C]", nameof(qkv));
        if (rows == 0) return;

        int padded = AttentionShape.Padded(headSize);
        string kernel = padded switch { 16 => Hs16, 32 => Hs32, 64 => Hs64, _ => Hs128 };
        float scale = 1f / MathF.Sqrt(headSize);
        ulong outPtr = output.Address, lsePtr = logSumExp.Address, qkvPtr = qkv.Address;
        void** args = stackalloc void*[7];
        args[0] = &outPtr;
        args[1] = &lsePtr;
        args[2] = &qkvPtr;
        args[3] = &sequence;
        args[4] = &channels;
        args[5] = &heads;
        args[6] = &scale;
        var grid = new Dim3((uint)AttentionShape.Tiles(sequence, QueryTile), (uint)(batch * heads));
        device.Launch(device.GetKernel(kernel), grid, AttentionShape.Threads, SharedBytes(padded), args, 7);
    }
}

/// <summary>
/// attention_backward_dq_hs* then attention_backward_dkv_hs*: dqkv [B, T, 3C] (every element overwritten) from
/// dout [B, T, C], qkv, out and lse of <see cref="AttentionForward"/>. P is recomputed from q, k and lse; no T×T
/// matrix and no atomics — bit-reproducible. The first kernel writes dq and D = rowsum(dout ∘ out) into
/// <c>scratch</c> ([B, H, T]); the second writes dk and dv.
/// </summary>
internal static unsafe class AttentionBackward
{
    public const string Name = "attention_backward";
    public const string Dq16 = Name + "_dq_hs16", Dq32 = Name + "_dq_hs32", Dq64 = Name + "_dq_hs64", Dq128 = Name + "_dq_hs128";
    public const string Dkv16 = Name + "_dkv_hs16", Dkv32 = Name + "_dkv_hs32", Dkv64 = Name + "_dkv_hs64", Dkv128 = Name + "_dkv_hs128";
    /// <summary>Key rows of the dq kernel's tiles and query rows of the dkv kernel's tiles.</summary>
    public const int InnerTile = 32;

    /// <summary>Query rows per block of the dq kernel and key rows per block of the dkv kernel.</summary>
    public static int OuterTile(int padded) => padded == 128 ? 32 : 64;

    /// <summary>dq kernel: Q, dO [BR][D+4], K, V [32][D+4], dS [BR][40], in bytes.</summary>
    public static uint DqSharedBytes(int padded)
    {
        int outer = OuterTile(padded);
        return (uint)(sizeof(float) * ((2 * outer + 2 * InnerTile) * (padded + 4) + outer * (InnerTile + 8)));
    }

    /// <summary>dkv kernel: K, V [BC][D+4], Q, dO [32][D+4], Pᵀ, dSᵀ [BC][40], lse and D [32], in bytes.</summary>
    public static uint DkvSharedBytes(int padded)
    {
        int outer = OuterTile(padded);
        return (uint)(sizeof(float) * ((2 * outer + 2 * InnerTile) * (padded + 4) + 2 * outer * (InnerTile + 8) + 2 * InnerTile));
    }

    [KernelSignature(Dq16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dq32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dq64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dq128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv16, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv32, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv64, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    [KernelSignature(Dkv128, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dqkv, DeviceSpan<float> dout, DeviceSpan<float> qkv, DeviceSpan<float> output,
        DeviceSpan<float> logSumExp, DeviceSpan<float> scratch, int batch, int sequence, int channels, int heads)
    {
        int headSize = AttentionShape.HeadSize(Name, batch, sequence, channels, heads);
        long rows = (long)batch * sequence;
        AttentionShape.Require(Name, dqkv, rows * 3 * channels, "dqkv [B, T, 3C]", nameof(dqkv));
        AttentionShape.Require(Name, dout, rows * channels, "dout [B, T, C]", nameof(dout));
        AttentionShape.Require(Name, qkv, rows * 3 * channels, "qkv [B, T, 3C]", nameof(qkv));
        AttentionShape.Require(Name, output, rows * channels, "out [B, T, C]", nameof(output));
        AttentionShape.Require(Name, logSumExp, rows * heads, "lse [B, H, T]", nameof(logSumExp));
        AttentionShape.Require(Name, scratch, rows * heads, "scratch [B, H, T]", nameof(scratch));
        if (rows == 0) return;

        int padded = AttentionShape.Padded(headSize);
        int outer = OuterTile(padded);
        float scale = 1f / MathF.Sqrt(headSize);
        ulong dqkvPtr = dqkv.Address, doutPtr = dout.Address, qkvPtr = qkv.Address, outPtr = output.Address,
              lsePtr = logSumExp.Address, scratchPtr = scratch.Address;
        var grid = new Dim3((uint)AttentionShape.Tiles(sequence, outer), (uint)(batch * heads));

        void** args = stackalloc void*[10];
        args[0] = &dqkvPtr;
        args[1] = &scratchPtr;
        args[2] = &doutPtr;
        args[3] = &qkvPtr;
        args[4] = &outPtr;
        args[5] = &lsePtr;
        args[6] = &sequence;
        args[7] = &channels;
        args[8] = &heads;
        args[9] = &scale;
        string dq = padded switch { 16 => Dq16, 32 => Dq32, 64 => Dq64, _ => Dq128 };
        device.Launch(device.GetKernel(dq), grid, AttentionShape.Threads, DqSharedBytes(padded), args, 10);

        args[0] = &dqkvPtr;
        args[1] = &doutPtr;
        args[2] = &qkvPtr;
        args[3] = &lsePtr;
        args[4] = &scratchPtr;
        args[5] = &sequence;
        args[6] = &channels;
        args[7] = &heads;
        args[8] = &scale;
        string dkv = padded switch { 16 => Dkv16, 32 => Dkv32, 64 => Dkv64, _ => Dkv128 };
        device.Launch(device.GetKernel(dkv), grid, AttentionShape.Threads, DkvSharedBytes(padded), args, 9);
    }
}

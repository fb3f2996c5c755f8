namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/rope.cu: rotate-half RoPE in place, with a scale folded in (mirrors of Cpu/RopeOps).
// Grid-stride kernels over the rotated pairs: 256 threads, at most LaunchChecks.MaxGridStrideBlocks blocks.

/// <summary>
/// rope_forward: x ← scale·R(t)·x in place (RopeOps.Forward with scale). x [batch, sequence, heads·headSize], row (b, t)
/// at position t; cos, sin [≥ sequence, headSize/2] (Models/Llama/LlamaRope.Tables); headSize even. The engine passes attention's
/// 1/√hd as the query's scale.
/// </summary>
internal static class RopeForward
{
    public const string Name = "rope_forward";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<float> cos, DeviceSpan<float> sin,
        int batch, int sequence, int heads, int headSize, float scale)
        => RopeLaunch.Launch(device, Name, x, cos, sin, batch, sequence, heads, headSize, scale);

    /// <summary>
    /// rope_forward_bf16: the same on bf16 x (q and k in bf16 precision), fp32 math from the fp32 tables and one rounding to
    /// nearest even per value — RopeOps.Forward on the widened values, then rounded.
    /// </summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> x, DeviceSpan<float> cos, DeviceSpan<float> sin,
        int batch, int sequence, int heads, int headSize, float scale)
    {
        const string kernel = Name + "_bf16";
        int blocks = RopeLaunch.Check(kernel, x, cos, sin, batch, sequence, heads, headSize);
        if (blocks == 0) return;
        KernelStubs.rope_forward_bf16(device, new(blocks, Threads), x: x, cos_table: cos, sin_table: sin, batch: batch, sequence: sequence, heads: heads, head_size: headSize, scale: scale);
    }
}

/// <summary>
/// rope_backward: x ← scale·R(t)ᵀ·x in place (RopeOps.Backward with scale): the gradient through
/// <see cref="RopeForward"/> with the same tables and scale. Shapes as <see cref="RopeForward"/>.
/// </summary>
internal static class RopeBackward
{
    public const string Name = "rope_backward";
    public const int Threads = RopeForward.Threads;

    public static void Launch(IComputeDevice device, DeviceSpan<float> x, DeviceSpan<float> cos, DeviceSpan<float> sin,
        int batch, int sequence, int heads, int headSize, float scale)
        => RopeLaunch.Launch(device, Name, x, cos, sin, batch, sequence, heads, headSize, scale);
}

/// <summary>The checks and launch the kernels share: they take the same arguments.</summary>
file static class RopeLaunch
{
    public static void Launch(IComputeDevice device, string kernel, DeviceSpan<float> x, DeviceSpan<float> cos, DeviceSpan<float> sin,
        int batch, int sequence, int heads, int headSize, float scale)
    {
        int blocks = Check(kernel, x, cos, sin, batch, sequence, heads, headSize);
        if (blocks == 0) return;
        if (kernel == RopeForward.Name)
            KernelStubs.rope_forward(device, new(blocks, RopeForward.Threads), x: x, cos_table: cos, sin_table: sin, batch: batch, sequence: sequence, heads: heads, head_size: headSize, scale: scale);
        else
            KernelStubs.rope_backward(device, new(blocks, RopeForward.Threads), x: x, cos_table: cos, sin_table: sin, batch: batch, sequence: sequence, heads: heads, head_size: headSize, scale: scale);
    }

    /// <summary>Checks the shapes against x (fp32 or bf16) and the tables; the grid's blocks (0: nothing to rotate).</summary>
    public static int Check<T>(string kernel, DeviceSpan<T> x, DeviceSpan<float> cos, DeviceSpan<float> sin, int batch, int sequence, int heads, int headSize) where T : unmanaged
    {
        LaunchChecks.NotBelow(kernel, batch, 0);
        LaunchChecks.NotBelow(kernel, sequence, 0);
        LaunchChecks.NotBelow(kernel, heads, 1);
        LaunchChecks.NotBelow(kernel, headSize, 2);
        if (headSize % 2 != 0) throw new ArgumentException($"{kernel}: headSize must be even (RoPE rotates pairs of channels), got {headSize}.", nameof(headSize));
        int n = LaunchChecks.Elements(kernel, (long)batch * sequence * heads * headSize, "x [batch, sequence, heads·headSize]");
        long table = (long)sequence * (headSize / 2);
        LaunchChecks.AtLeast(kernel, x, n, "[batch, sequence, heads·headSize]");
        LaunchChecks.AtLeast(kernel, cos, table, "[sequence, headSize/2]");
        LaunchChecks.AtLeast(kernel, sin, table, "[sequence, headSize/2]");
        return n == 0 ? 0 : LaunchChecks.GridStrideBlocks(n / 2, RopeForward.Threads);
    }
}

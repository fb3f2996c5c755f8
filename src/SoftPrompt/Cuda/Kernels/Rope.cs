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
}

/// <summary>
/// rope_gather_bf16: y[r] = bf16(scale·R(t)·x[rowIndex[r]]) — <see cref="RopeForward"/>'s fp32 math on a gathered fp32 row,
/// each value rounded to nearest even once (bf16 precision: attention's q/k in the full layout from the shared-row
/// projections). y [batch, sequence, heads·headSize] bf16, row r = b·sequence + t; x [source rows, heads·headSize] fp32;
/// rowIndex [batch·sequence]; tables as <see cref="RopeForward"/>; y must not overlap x.
/// </summary>
internal static class RopeGatherBf16
{
    public const string Name = "rope_gather_bf16";

    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<float> x, DeviceSpan<int> rowIndex, DeviceSpan<float> cos, DeviceSpan<float> sin,
        int batch, int sequence, int heads, int headSize, float scale)
    {
        int blocks = RopeLaunch.Check(Name, y, cos, sin, batch, sequence, heads, headSize, nameof(y));
        LaunchChecks.AtLeast(Name, rowIndex, (long)batch * sequence, "[batch·sequence]");
        if (blocks == 0) return;
        LaunchChecks.AtLeast(Name, x, (long)heads * headSize, "[source rows ≥ 1, heads·headSize]");
        if (y.Address < x.Address + (ulong)x.Length * sizeof(float) && x.Address < y.Address + (ulong)y.Length * sizeof(ushort))
            throw new ArgumentException($"{Name}: y must not overlap x.", nameof(y));
        int sourceRows = (int)Math.Min(int.MaxValue, x.Length / ((long)heads * headSize));
        KernelStubs.rope_gather_bf16(device, new(blocks, RopeForward.Threads), y: y, x: x, row_index: rowIndex, source_rows: sourceRows, cos_table: cos, sin_table: sin,
            batch: batch, sequence: sequence, heads: heads, head_size: headSize, scale: scale);
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

    /// <summary>Checks the shapes against the rotated rows x (fp32, or rope_gather_bf16's bf16 y) and the tables; the grid's blocks (0: nothing to rotate).</summary>
    public static int Check<T>(string kernel, DeviceSpan<T> x, DeviceSpan<float> cos, DeviceSpan<float> sin, int batch, int sequence, int heads, int headSize, string rotated = "x") where T : unmanaged
    {
        LaunchChecks.NotBelow(kernel, batch, 0);
        LaunchChecks.NotBelow(kernel, sequence, 0);
        LaunchChecks.NotBelow(kernel, heads, 1);
        LaunchChecks.NotBelow(kernel, headSize, 2);
        if (headSize % 2 != 0) throw new ArgumentException($"{kernel}: headSize must be even (RoPE rotates pairs of channels), got {headSize}.", nameof(headSize));
        int n = LaunchChecks.Elements(kernel, (long)batch * sequence * heads * headSize, "x [batch, sequence, heads·headSize]");
        long table = (long)sequence * (headSize / 2);
        LaunchChecks.AtLeast(kernel, x, n, "[batch, sequence, heads·headSize]", rotated);
        LaunchChecks.AtLeast(kernel, cos, table, "[sequence, headSize/2]");
        LaunchChecks.AtLeast(kernel, sin, table, "[sequence, headSize/2]");
        return n == 0 ? 0 : LaunchChecks.GridStrideBlocks(n / 2, RopeForward.Threads);
    }
}

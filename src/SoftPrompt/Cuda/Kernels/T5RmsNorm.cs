namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/rmsnorm.cu (mirrors of Cpu/RmsNormOps: T5's T5LayerNorm, Llama's RMSNorm). One warp per row,
// 8 rows per 256-thread block.

/// <summary>
/// rmsnorm_forward: y = x·rstd·weight over the last axis, rstd = 1/sqrt(mean(x²) + epsilon), saving rstd [N]
/// (RmsNormOps.Forward). x, y [N, C] (y may alias x); weight [C]. rstd may be absent (length 0) when nothing is saved.
/// </summary>
internal static unsafe class RmsNormForward
{
    public const string Name = "rmsnorm_forward";
    public const int Threads = 256;
    public const int RowsPerBlock = Threads / 32;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> rstd, DeviceSpan<float> x, DeviceSpan<float> weight,
        int rows, int channels, float epsilon)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        long n = (long)rows * channels;
        LaunchChecks.AtLeast(Name, y, n, "[N, C]");
        LaunchChecks.AtLeast(Name, x, n, "[N, C]");
        LaunchChecks.AtLeast(Name, weight, channels, "[C]");
        LaunchChecks.AbsentOrAtLeast(Name, rstd, rows, "[N]");
        if (rows == 0) return;
        ulong yPtr = y.Address, rstdPtr = rstd.Length == 0 ? 0 : rstd.Address, xPtr = x.Address, weightPtr = weight.Address;
        void** args = stackalloc void*[7];
        args[0] = &yPtr;
        args[1] = &rstdPtr;
        args[2] = &xPtr;
        args[3] = &weightPtr;
        args[4] = &rows;
        args[5] = &channels;
        args[6] = &epsilon;
        device.Launch(device.GetKernel(Name), (rows + RowsPerBlock - 1) / RowsPerBlock, Threads, 0, args, 7);
    }
}

/// <summary>
/// rmsnorm_backward: dx += rstd·(g − x̂·mean(g·x̂)), g = dy·weight, x̂ = x·rstd — the input gradient ADDED into dx, so the
/// residual add is fused (RmsNormOps.Backward). dx, dy, x [N, C]; weight [C]; rstd [N] from the forward. dx must not
/// alias dy or x.
/// </summary>
internal static unsafe class RmsNormBackward
{
    public const string Name = "rmsnorm_backward";
    public const int Threads = 256;
    public const int RowsPerBlock = Threads / 32;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> rstd, int rows, int channels)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        long n = (long)rows * channels;
        LaunchChecks.AtLeast(Name, dx, n, "[N, C]");
        LaunchChecks.AtLeast(Name, dy, n, "[N, C]");
        LaunchChecks.AtLeast(Name, x, n, "[N, C]");
        LaunchChecks.AtLeast(Name, weight, channels, "[C]");
        LaunchChecks.AtLeast(Name, rstd, rows, "[N]");
        if (rows == 0) return;
        if (dx.Address == dy.Address || dx.Address == x.Address)
            throw new ArgumentException($"{Name}: dx must not alias dy or x (the gradient is added into dx).", nameof(dx));
        ulong dxPtr = dx.Address, dyPtr = dy.Address, xPtr = x.Address, weightPtr = weight.Address, rstdPtr = rstd.Address;
        void** args = stackalloc void*[7];
        args[0] = &dxPtr;
        args[1] = &dyPtr;
        args[2] = &xPtr;
        args[3] = &weightPtr;
        args[4] = &rstdPtr;
        args[5] = &rows;
        args[6] = &channels;
        device.Launch(device.GetKernel(Name), (rows + RowsPerBlock - 1) / RowsPerBlock, Threads, 0, args, 7);
    }
}

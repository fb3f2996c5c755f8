namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/layernorm.cu (mirrors of Cpu/LayerNormOps). One warp per row, 8 rows per 256-thread block.

/// <summary>
/// layernorm_forward: y = (x − mean)·rstd·weight + bias over the last axis, saving mean [N] and rstd [N]
/// (LayerNormOps.Forward). x, y [N, C] (y must not alias x); weight, bias [C]. mean/rstd may be absent (length 0) when nothing is saved.
/// </summary>
internal static unsafe class LayerNormForward
{
    public const string Name = "layernorm_forward";
    public const int Threads = 256;
    public const int RowsPerBlock = Threads / 32;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(float))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> mean, DeviceSpan<float> rstd, DeviceSpan<float> x,
        DeviceSpan<float> weight, DeviceSpan<float> bias, int rows, int channels, float epsilon)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        long n = (long)rows * channels;
        LaunchChecks.AtLeast(Name, y, n, "[N, C]");
        LaunchChecks.AtLeast(Name, x, n, "[N, C]");
        LaunchChecks.AtLeast(Name, weight, channels, "[C]");
        LaunchChecks.AtLeast(Name, bias, channels, "[C]");
        LaunchChecks.AbsentOrAtLeast(Name, mean, rows, "[N]");
        LaunchChecks.AbsentOrAtLeast(Name, rstd, rows, "[N]");
        if (rows == 0) return;
        if (y.Address == x.Address) throw new ArgumentException($"{Name}: y must not alias x (the backward needs x).", nameof(y));
        ulong yPtr = y.Address, meanPtr = mean.Length == 0 ? 0 : mean.Address, rstdPtr = rstd.Length == 0 ? 0 : rstd.Address,
            xPtr = x.Address, weightPtr = weight.Address, biasPtr = bias.Address;
        void** args = stackalloc void*[9];
        args[0] = &yPtr;
        args[1] = &meanPtr;
        args[2] = &rstdPtr;
        args[3] = &xPtr;
        args[4] = &weightPtr;
        args[5] = &biasPtr;
        args[6] = &rows;
        args[7] = &channels;
        args[8] = &epsilon;
        device.Launch(device.GetKernel(Name), (rows + RowsPerBlock - 1) / RowsPerBlock, Threads, 0, args, 9);
    }
}

/// <summary>
/// layernorm_backward: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·weight, x̂ = (x − mean)·rstd — the input gradient
/// ADDED into dx, so the residual add is fused (LayerNormOps.Backward). dx, dy, x [N, C]; weight [C]; mean, rstd [N]
/// from the forward. dx must not alias dy or x.
/// </summary>
internal static unsafe class LayerNormBackward
{
    public const string Name = "layernorm_backward";
    public const int Threads = 256;
    public const int RowsPerBlock = Threads / 32;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> mean, DeviceSpan<float> rstd, int rows, int channels)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        long n = (long)rows * channels;
        LaunchChecks.AtLeast(Name, dx, n, "[N, C]");
        LaunchChecks.AtLeast(Name, dy, n, "[N, C]");
        LaunchChecks.AtLeast(Name, x, n, "[N, C]");
        LaunchChecks.AtLeast(Name, weight, channels, "[C]");
        LaunchChecks.AtLeast(Name, mean, rows, "[N]");
        LaunchChecks.AtLeast(Name, rstd, rows, "[N]");
        if (rows == 0) return;
        if (dx.Address == dy.Address || dx.Address == x.Address)
            throw new ArgumentException($"{Name}: dx must not alias dy or x (the gradient is added into dx).", nameof(dx));
        ulong dxPtr = dx.Address, dyPtr = dy.Address, xPtr = x.Address, weightPtr = weight.Address, meanPtr = mean.Address, rstdPtr = rstd.Address;
        void** args = stackalloc void*[8];
        args[0] = &dxPtr;
        args[1] = &dyPtr;
        args[2] = &xPtr;
        args[3] = &weightPtr;
        args[4] = &meanPtr;
        args[5] = &rstdPtr;
        args[6] = &rows;
        args[7] = &channels;
        device.Launch(device.GetKernel(Name), (rows + RowsPerBlock - 1) / RowsPerBlock, Threads, 0, args, 8);
    }
}

namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/activation.cu: GELU (mirror of Cpu/GeluOps) and the bias(+residual) fill before a beta = 1 GEMM.
// Grid-stride kernels: 256 threads, at most LaunchChecks.MaxGridStrideBlocks blocks, float4 when aligned.

/// <summary>gelu_forward: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GeluOps.Forward); n = x.Length, y [≥ n]; y may alias x.</summary>
internal static unsafe class GeluForward
{
    public const string Name = "gelu_forward";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x)
    {
        int n = LaunchChecks.Elements(Name, x.Length, "x");
        LaunchChecks.AtLeast(Name, y, n, "[n = x.Length]");
        if (n == 0) return;
        ulong yPtr = y.Address, xPtr = x.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(yPtr, xPtr) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[3];
        args[0] = &yPtr;
        args[1] = &xPtr;
        args[2] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 3);
    }
}

/// <summary>gelu_backward: dx = dy·gelu'(x) (GeluOps.Backward); n = x.Length, dx and dy [≥ n]; dx may alias dy.</summary>
internal static unsafe class GeluBackward
{
    public const string Name = "gelu_backward";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x)
    {
        int n = LaunchChecks.Elements(Name, x.Length, "x");
        LaunchChecks.AtLeast(Name, dx, n, "[n = x.Length]");
        LaunchChecks.AtLeast(Name, dy, n, "[n = x.Length]");
        if (n == 0) return;
        ulong dxPtr = dx.Address, dyPtr = dy.Address, xPtr = x.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(dxPtr, dyPtr, xPtr) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[4];
        args[0] = &dxPtr;
        args[1] = &dyPtr;
        args[2] = &xPtr;
        args[3] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 4);
    }
}

/// <summary>
/// bias_residual: y[r, c] = (residual present ? residual[r, c] : 0) + bias[c] — the initial value of a GEMM output that
/// then accumulates x·W with beta = 1. y [N, C]; residual [N, C] or absent (length 0); bias [C]. y may not alias residual.
/// </summary>
internal static unsafe class BiasResidual
{
    public const string Name = "bias_residual";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> residual, DeviceSpan<float> bias, int rows, int channels)
    {
        LaunchChecks.NotBelow(Name, rows, 0);
        LaunchChecks.NotBelow(Name, channels, 1);
        int n = LaunchChecks.Elements(Name, (long)rows * channels, "y [N, C]");
        LaunchChecks.AtLeast(Name, y, n, "[N, C]");
        LaunchChecks.AbsentOrAtLeast(Name, residual, n, "[N, C]");
        LaunchChecks.AtLeast(Name, bias, channels, "[C]");
        if (n == 0) return;
        ulong yPtr = y.Address, residualPtr = residual.Length == 0 ? 0 : residual.Address, biasPtr = bias.Address;
        if (residualPtr != 0 && residualPtr == yPtr)
            throw new ArgumentException($"{Name}: y must not alias residual (write the sum into a separate buffer).", nameof(y));
        bool vec = channels % 4 == 0 && LaunchChecks.Aligned16(yPtr, residualPtr, biasPtr);
        int blocks = LaunchChecks.GridStrideBlocks(vec ? n / 4 : n, Threads);
        void** args = stackalloc void*[5];
        args[0] = &yPtr;
        args[1] = &residualPtr;
        args[2] = &biasPtr;
        args[3] = &rows;
        args[4] = &channels;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 5);
    }
}

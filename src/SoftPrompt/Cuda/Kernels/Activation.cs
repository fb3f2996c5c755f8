namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/activation.cu: GELU, ReLU, gated GELU and SwiGLU forward and backward (mirrors of Cpu/GeluOps,
// ReluOps, GatedGeluOps, SwiGluOps), and the bias(+residual) fill before a beta = 1 GEMM. Grid-stride kernels: 256
// threads, at most LaunchChecks.MaxGridStrideBlocks blocks, float4 when every buffer is aligned.

/// <summary>The launch every elementwise activation kernel shares: kernel(buffers…, n).</summary>
internal static unsafe class Elementwise
{
    public const int Threads = 256;

    /// <summary>
    /// Checks that each of <paramref name="buffers"/> holds n = <paramref name="count"/> elements and, when there are two outputs
    /// (the first two buffers), that they differ; then launches with the buffers' addresses in order and n last.
    /// <paramref name="names"/> lists the buffers' parameter names, space-separated, for the errors.
    /// </summary>
    public static void Launch(IComputeDevice device, string kernel, string names, long count, int outputs, params ReadOnlySpan<DeviceSpan<float>> buffers)
    {
        int n = LaunchChecks.Elements(kernel, count, "n");
        for (int i = 0; i < buffers.Length; i++)
            if (buffers[i].Length < n) LaunchChecks.AtLeast(kernel, buffers[i], n, "[n]", names.Split(' ')[i]);
        if (n == 0) return;
        if (outputs == 2 && buffers[0].Address == buffers[1].Address)
            throw new ArgumentException($"{kernel}: {names.Split(' ')[0]} and {names.Split(' ')[1]} must be different buffers.", names.Split(' ')[1]);
        Span<ulong> addresses = stackalloc ulong[buffers.Length];
        for (int i = 0; i < buffers.Length; i++) addresses[i] = buffers[i].Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(addresses) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[buffers.Length + 1];
        fixed (ulong* pointers = addresses)
        {
            for (int i = 0; i < buffers.Length; i++) args[i] = pointers + i;
            args[buffers.Length] = &n;
            device.Launch(device.GetKernel(kernel), blocks, Threads, 0, args, buffers.Length + 1);
        }
    }
}

/// <summary>gelu_forward: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GeluOps.Forward); n = x.Length, y [≥ n]; y may alias x.</summary>
internal static class GeluForward
{
    public const string Name = "gelu_forward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x) => Elementwise.Launch(device, Name, "y x", x.Length, 1, y, x);
}

/// <summary>gelu_backward: dx = dy·gelu'(x) (GeluOps.Backward); n = x.Length, dx and dy [≥ n]; dx may alias dy.</summary>
internal static class GeluBackward
{
    public const string Name = "gelu_backward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x) => Elementwise.Launch(device, Name, "dx dy x", x.Length, 1, dx, dy, x);
}

/// <summary>relu_forward: y = max(x, 0) (ReluOps.Forward); n = x.Length, y [≥ n]; y may alias x.</summary>
internal static class ReluForward
{
    public const string Name = "relu_forward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x) => Elementwise.Launch(device, Name, "y x", x.Length, 1, y, x);
}

/// <summary>relu_backward: dx = x &gt; 0 ? dy : 0 (ReluOps.Backward; x the pre-activation); n = x.Length, dx and dy [≥ n]; dx may alias dy.</summary>
internal static class ReluBackward
{
    public const string Name = "relu_backward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x) => Elementwise.Launch(device, Name, "dx dy x", x.Length, 1, dx, dy, x);
}

/// <summary>
/// gated_gelu_forward: y = gelu_new(gate) · linear (GatedGeluOps.Forward; T5 v1.1's gate = wi_0·x, linear = wi_1·x);
/// n = gate.Length, y and linear [≥ n]; y may alias gate or linear.
/// </summary>
internal static class GatedGeluForward
{
    public const string Name = "gated_gelu_forward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> gate, DeviceSpan<float> linear) =>
        Elementwise.Launch(device, Name, "y gate linear", gate.Length, 1, y, gate, linear);
}

/// <summary>
/// gated_gelu_backward: dLinear = dy·gelu_new(gate), dGate = dy·linear·gelu_new'(gate) (GatedGeluOps.Backward);
/// n = gate.Length, every span [≥ n]. dGate and dLinear may alias any input (dGate over dy, dLinear over linear), not
/// each other.
/// </summary>
internal static class GatedGeluBackward
{
    public const string Name = "gated_gelu_backward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dGate, DeviceSpan<float> dLinear, DeviceSpan<float> dy, DeviceSpan<float> gate, DeviceSpan<float> linear) =>
        Elementwise.Launch(device, Name, "dGate dLinear dy gate linear", gate.Length, 2, dGate, dLinear, dy, gate, linear);
}

/// <summary>
/// swiglu_forward: y = silu(gate)·up, silu(g) = g/(1 + e^−g) (SwiGluOps.Forward; gate = gate_proj·x, up = up_proj·x).
/// y, gate, up [≥ n]; y may alias gate or up.
/// </summary>
internal static class SwiGluForward
{
    public const string Name = "swiglu_forward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> gate, DeviceSpan<float> up, int n) =>
        Elementwise.Launch(device, Name, "y gate up", n, 1, y, gate, up);
}

/// <summary>
/// swiglu_backward: dUp = dy·silu(gate), dGate = dy·up·σ(gate)·(1 + gate·(1 − σ(gate))) (SwiGluOps.Backward).
/// Every span [≥ n]. dGate and dUp may alias any input (the engine writes dGate over dy), not each other.
/// </summary>
internal static class SwiGluBackward
{
    public const string Name = "swiglu_backward";

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dGate, DeviceSpan<float> dUp, DeviceSpan<float> dy, DeviceSpan<float> gate, DeviceSpan<float> up, int n) =>
        Elementwise.Launch(device, Name, "dGate dUp dy gate up", n, 2, dGate, dUp, dy, gate, up);
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

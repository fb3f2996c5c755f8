namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/t5_activation.cu: T5's feed-forward activations (mirrors of Cpu/ReluOps and Cpu/GatedGeluOps).
// Grid-stride kernels: 256 threads, at most LaunchChecks.MaxGridStrideBlocks blocks, float4 when every buffer is aligned.

/// <summary>relu_forward: y = max(x, 0) (ReluOps.Forward); n = x.Length, y [≥ n]; y may alias x.</summary>
internal static unsafe class ReluForward
{
    public const string Name = "relu_forward";
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

/// <summary>relu_backward: dx = x &gt; 0 ? dy : 0 (ReluOps.Backward; x the pre-activation); n = x.Length, dx and dy [≥ n]; dx may alias dy.</summary>
internal static unsafe class ReluBackward
{
    public const string Name = "relu_backward";
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
/// gated_gelu_forward: y = gelu_new(gate) · linear (GatedGeluOps.Forward; T5 v1.1's gate = wi_0·x, linear = wi_1·x);
/// n = gate.Length, y and linear [≥ n]; y may alias gate or linear.
/// </summary>
internal static unsafe class GatedGeluForward
{
    public const string Name = "gated_gelu_forward";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> gate, DeviceSpan<float> linear)
    {
        int n = LaunchChecks.Elements(Name, gate.Length, "gate");
        LaunchChecks.AtLeast(Name, y, n, "[n = gate.Length]");
        LaunchChecks.AtLeast(Name, linear, n, "[n = gate.Length]");
        if (n == 0) return;
        ulong yPtr = y.Address, gatePtr = gate.Address, linearPtr = linear.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(yPtr, gatePtr, linearPtr) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[4];
        args[0] = &yPtr;
        args[1] = &gatePtr;
        args[2] = &linearPtr;
        args[3] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 4);
    }
}

/// <summary>
/// gated_gelu_backward: dLinear = dy·gelu_new(gate), dGate = dy·linear·gelu_new'(gate) (GatedGeluOps.Backward);
/// n = gate.Length, every span [≥ n]. dGate and dLinear may alias any input (dGate over dy, dLinear over linear), not
/// each other.
/// </summary>
internal static unsafe class GatedGeluBackward
{
    public const string Name = "gated_gelu_backward";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dGate, DeviceSpan<float> dLinear, DeviceSpan<float> dy,
        DeviceSpan<float> gate, DeviceSpan<float> linear)
    {
        int n = LaunchChecks.Elements(Name, gate.Length, "gate");
        LaunchChecks.AtLeast(Name, dGate, n, "[n = gate.Length]");
        LaunchChecks.AtLeast(Name, dLinear, n, "[n = gate.Length]");
        LaunchChecks.AtLeast(Name, dy, n, "[n = gate.Length]");
        LaunchChecks.AtLeast(Name, linear, n, "[n = gate.Length]");
        if (n == 0) return;
        if (dGate.Address == dLinear.Address)
            throw new ArgumentException($"{Name}: dGate and dLinear must be different buffers.", nameof(dLinear));
        ulong dGatePtr = dGate.Address, dLinearPtr = dLinear.Address, dyPtr = dy.Address, gatePtr = gate.Address, linearPtr = linear.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(dGatePtr, dLinearPtr, dyPtr, gatePtr, linearPtr) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[6];
        args[0] = &dGatePtr;
        args[1] = &dLinearPtr;
        args[2] = &dyPtr;
        args[3] = &gatePtr;
        args[4] = &linearPtr;
        args[5] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 6);
    }
}

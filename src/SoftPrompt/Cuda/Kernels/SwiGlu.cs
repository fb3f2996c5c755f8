namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/swiglu.cu: Llama's SwiGLU activation (mirrors of Cpu/SwiGluOps). Grid-stride kernels: 256
// threads, at most LaunchChecks.MaxGridStrideBlocks blocks, float4 when every buffer is aligned.

/// <summary>
/// swiglu_forward: y = silu(gate)·up, silu(g) = g/(1 + e^−g) (SwiGluOps.Forward; gate = gate_proj·x, up = up_proj·x).
/// y, gate, up [≥ n]; y may alias gate or up.
/// </summary>
internal static unsafe class SwiGluForward
{
    public const string Name = "swiglu_forward";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> gate, DeviceSpan<float> up, int n)
    {
        n = LaunchChecks.Elements(Name, n, "n");
        LaunchChecks.AtLeast(Name, y, n, "[n]");
        LaunchChecks.AtLeast(Name, gate, n, "[n]");
        LaunchChecks.AtLeast(Name, up, n, "[n]");
        if (n == 0) return;
        ulong yPtr = y.Address, gatePtr = gate.Address, upPtr = up.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(yPtr, gatePtr, upPtr) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[4];
        args[0] = &yPtr;
        args[1] = &gatePtr;
        args[2] = &upPtr;
        args[3] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 4);
    }
}

/// <summary>
/// swiglu_backward: dUp = dy·silu(gate), dGate = dy·up·σ(gate)·(1 + gate·(1 − σ(gate))) (SwiGluOps.Backward).
/// Every span [≥ n]. dGate and dUp may alias any input (the engine writes dGate over dy), not each other.
/// </summary>
internal static unsafe class SwiGluBackward
{
    public const string Name = "swiglu_backward";
    public const int Threads = 256;

    [KernelSignature(Name, typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int))]
    public static void Launch(IComputeDevice device, DeviceSpan<float> dGate, DeviceSpan<float> dUp, DeviceSpan<float> dy,
        DeviceSpan<float> gate, DeviceSpan<float> up, int n)
    {
        n = LaunchChecks.Elements(Name, n, "n");
        LaunchChecks.AtLeast(Name, dGate, n, "[n]");
        LaunchChecks.AtLeast(Name, dUp, n, "[n]");
        LaunchChecks.AtLeast(Name, dy, n, "[n]");
        LaunchChecks.AtLeast(Name, gate, n, "[n]");
        LaunchChecks.AtLeast(Name, up, n, "[n]");
        if (n == 0) return;
        if (dGate.Address == dUp.Address)
            throw new ArgumentException($"{Name}: dGate and dUp must be different buffers.", nameof(dUp));
        ulong dGatePtr = dGate.Address, dUpPtr = dUp.Address, dyPtr = dy.Address, gatePtr = gate.Address, upPtr = up.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(dGatePtr, dUpPtr, dyPtr, gatePtr, upPtr) ? (n + 3) / 4 : n, Threads);
        void** args = stackalloc void*[6];
        args[0] = &dGatePtr;
        args[1] = &dUpPtr;
        args[2] = &dyPtr;
        args[3] = &gatePtr;
        args[4] = &upPtr;
        args[5] = &n;
        device.Launch(device.GetKernel(Name), blocks, Threads, 0, args, 6);
    }
}

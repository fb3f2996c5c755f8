namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/activation.cu: GELU, ReLU, gated GELU and SwiGLU forward and backward (mirrors of Cpu/GeluOps,
// ReluOps, GatedGeluOps, SwiGluOps), and the bias(+residual) fill before a beta = 1 GEMM. Grid-stride kernels: 256
// threads, at most LaunchChecks.MaxGridStrideBlocks blocks, float4 when every buffer is aligned.

/// <summary>The checks and the grid every elementwise activation kernel shares.</summary>
internal static class Elementwise
{
    public const int Threads = 256;

    /// <summary>
    /// Checks that each of <paramref name="buffers"/> holds n = <paramref name="count"/> elements and, when there are two
    /// outputs (the first two buffers), that they differ; returns the launch shape, or null when there is nothing to launch.
    /// <paramref name="names"/> lists the buffers' parameter names, space-separated, for the errors.
    /// </summary>
    public static LaunchShape? Shape(string kernel, string names, long count, int outputs, out int n, params ReadOnlySpan<DeviceSpan<float>> buffers)
    {
        n = LaunchChecks.Elements(kernel, count, "n");
        for (int i = 0; i < buffers.Length; i++)
            if (buffers[i].Length < n) LaunchChecks.AtLeast(kernel, buffers[i], n, "[n]", names.Split(' ')[i]);
        if (n == 0) return null;
        if (outputs == 2 && buffers[0].Address == buffers[1].Address)
            throw new ArgumentException($"{kernel}: {names.Split(' ')[0]} and {names.Split(' ')[1]} must be different buffers.", names.Split(' ')[1]);
        bool aligned = true;
        foreach (var buffer in buffers) aligned &= LaunchChecks.Aligned16(buffer.Address);
        return new(LaunchChecks.GridStrideBlocks(aligned ? (n + 3) / 4 : n, Threads), Threads);
    }

    /// <summary>
    /// <see cref="Shape"/> for a kernel whose one output <paramref name="y"/> is bf16 (the *_forward_bf16 variants: an
    /// activation only a bf16 GEMM reads, rounded to nearest even as it is stored); it cannot alias the fp32 inputs.
    /// </summary>
    public static LaunchShape? Bf16Shape(string kernel, string names, long count, out int n, DeviceSpan<ushort> y, params ReadOnlySpan<DeviceSpan<float>> inputs)
    {
        n = LaunchChecks.Elements(kernel, count, "n");
        if (y.Length < n) throw new ArgumentException($"{kernel}: y holds {y.Length} bf16 elements, n is {n}.", nameof(y));
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i].Length < n) LaunchChecks.AtLeast(kernel, inputs[i], n, "[n]", names.Split(' ')[i]);
        if (n == 0) return null;
        bool aligned = LaunchChecks.Aligned16(y.Address);
        foreach (var input in inputs) aligned &= LaunchChecks.Aligned16(input.Address);
        return new(LaunchChecks.GridStrideBlocks(aligned ? (n + 3) / 4 : n, Threads), Threads);
    }
}

/// <summary>gelu_forward: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GeluOps.Forward); n = x.Length, y [≥ n]; y may alias x.</summary>
internal static class GeluForward
{
    public const string Name = "gelu_forward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x)
    {
        if (Elementwise.Shape(Name, "y x", x.Length, 1, out int n, y, x) is { } shape)
            KernelStubs.gelu_forward(device, shape, y: y, x: x, n: n);
    }

    /// <summary>gelu_forward_bf16: the same with y bf16 [≥ n] (rounded to nearest even: the down projection's GEMM operand).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<float> x)
    {
        if (Elementwise.Bf16Shape("gelu_forward_bf16", "x", x.Length, out int n, y, x) is { } shape)
            KernelStubs.gelu_forward_bf16(device, shape, y: y, x: x, n: n);
    }
}

/// <summary>gelu_backward: dx = dy·gelu'(x) (GeluOps.Backward); n = x.Length, dx and dy [≥ n]; dx may alias dy.</summary>
internal static class GeluBackward
{
    public const string Name = "gelu_backward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x)
    {
        if (Elementwise.Shape(Name, "dx dy x", x.Length, 1, out int n, dx, dy, x) is { } shape)
            KernelStubs.gelu_backward(device, shape, dx: dx, dy: dy, x: x, n: n);
    }
}

/// <summary>relu_forward: y = max(x, 0) (ReluOps.Forward); n = x.Length, y [≥ n]; y may alias x.</summary>
internal static class ReluForward
{
    public const string Name = "relu_forward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x)
    {
        if (Elementwise.Shape(Name, "y x", x.Length, 1, out int n, y, x) is { } shape)
            KernelStubs.relu_forward(device, shape, y: y, x: x, n: n);
    }

    /// <summary>relu_forward_bf16: the same with y bf16 [≥ n] (wo's GEMM operand).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<float> x)
    {
        if (Elementwise.Bf16Shape("relu_forward_bf16", "x", x.Length, out int n, y, x) is { } shape)
            KernelStubs.relu_forward_bf16(device, shape, y: y, x: x, n: n);
    }
}

/// <summary>relu_backward: dx = x &gt; 0 ? dy : 0 (ReluOps.Backward; x the pre-activation); n = x.Length, dx and dy [≥ n]; dx may alias dy.</summary>
internal static class ReluBackward
{
    public const string Name = "relu_backward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x)
    {
        if (Elementwise.Shape(Name, "dx dy x", x.Length, 1, out int n, dx, dy, x) is { } shape)
            KernelStubs.relu_backward(device, shape, dx: dx, dy: dy, x: x, n: n);
    }
}

/// <summary>
/// gated_gelu_forward: y = gelu_new(gate) · linear (GatedGeluOps.Forward; T5 v1.1's gate = wi_0·x, linear = wi_1·x);
/// n = gate.Length, y and linear [≥ n]; y may alias gate or linear.
/// </summary>
internal static class GatedGeluForward
{
    public const string Name = "gated_gelu_forward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> gate, DeviceSpan<float> linear)
    {
        if (Elementwise.Shape(Name, "y gate linear", gate.Length, 1, out int n, y, gate, linear) is { } shape)
            KernelStubs.gated_gelu_forward(device, shape, y: y, gate: gate, linear: linear, n: n);
    }

    /// <summary>gated_gelu_forward_bf16: the same with y bf16 [≥ n] (wo's GEMM operand).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<float> gate, DeviceSpan<float> linear)
    {
        if (Elementwise.Bf16Shape("gated_gelu_forward_bf16", "gate linear", gate.Length, out int n, y, gate, linear) is { } shape)
            KernelStubs.gated_gelu_forward_bf16(device, shape, y: y, gate: gate, linear: linear, n: n);
    }
}

/// <summary>
/// gated_gelu_backward: dLinear = dy·gelu_new(gate), dGate = dy·linear·gelu_new'(gate) (GatedGeluOps.Backward);
/// n = gate.Length, every span [≥ n]. dGate and dLinear may alias any input (dGate over dy, dLinear over linear), not
/// each other.
/// </summary>
internal static class GatedGeluBackward
{
    public const string Name = "gated_gelu_backward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> dGate, DeviceSpan<float> dLinear, DeviceSpan<float> dy, DeviceSpan<float> gate, DeviceSpan<float> linear)
    {
        if (Elementwise.Shape(Name, "dGate dLinear dy gate linear", gate.Length, 2, out int n, dGate, dLinear, dy, gate, linear) is { } shape)
            KernelStubs.gated_gelu_backward(device, shape, d_gate: dGate, d_linear: dLinear, dy: dy, gate: gate, linear: linear, n: n);
    }
}

/// <summary>
/// swiglu_forward: y = silu(gate)·up, silu(g) = g/(1 + e^−g) (SwiGluOps.Forward; gate = gate_proj·x, up = up_proj·x).
/// y, gate, up [≥ n]; y may alias gate or up.
/// </summary>
internal static class SwiGluForward
{
    public const string Name = "swiglu_forward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> gate, DeviceSpan<float> up, int n)
    {
        if (Elementwise.Shape(Name, "y gate up", n, 1, out int count, y, gate, up) is { } shape)
            KernelStubs.swiglu_forward(device, shape, y: y, gate: gate, up: up, n: count);
    }

    /// <summary>swiglu_forward_bf16: the same with y bf16 [≥ n] (down_proj's GEMM operand).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<float> gate, DeviceSpan<float> up, int n)
    {
        if (Elementwise.Bf16Shape("swiglu_forward_bf16", "gate up", n, out int count, y, gate, up) is { } shape)
            KernelStubs.swiglu_forward_bf16(device, shape, y: y, gate: gate, up: up, n: count);
    }
}

/// <summary>
/// swiglu_backward: dUp = dy·silu(gate), dGate = dy·up·σ(gate)·(1 + gate·(1 − σ(gate))) (SwiGluOps.Backward).
/// Every span [≥ n]. dGate and dUp may alias any input (the engine writes dGate over dy), not each other.
/// </summary>
internal static class SwiGluBackward
{
    public const string Name = "swiglu_backward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> dGate, DeviceSpan<float> dUp, DeviceSpan<float> dy, DeviceSpan<float> gate, DeviceSpan<float> up, int n)
    {
        if (Elementwise.Shape(Name, "dGate dUp dy gate up", n, 2, out int count, dGate, dUp, dy, gate, up) is { } shape)
            KernelStubs.swiglu_backward(device, shape, d_gate: dGate, d_up: dUp, dy: dy, gate: gate, up: up, n: count);
    }
}

/// <summary>
/// bias_residual: y[r, c] = (residual present ? residual[r, c] : 0) + bias[c] — the initial value of a GEMM output that
/// then accumulates x·W with beta = 1. y [N, C]; residual [N, C] or absent (length 0); bias [C]. y may not alias residual.
/// </summary>
internal static class BiasResidual
{
    public const string Name = "bias_residual";
    public const int Threads = 256;

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
        KernelStubs.bias_residual(device, new(blocks, Threads), y: y, residual: residual, bias: bias, rows: rows, channels: channels);
    }
}

/// <summary>convert_to_bf16: y = bf16(x), round to nearest even (the host's ElementConversion.SingleToBFloat16); n = x.Length, y [≥ n] bf16 bits.</summary>
internal static class ConvertToBf16
{
    public const string Name = "convert_to_bf16";

    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<float> x)
    {
        int n = LaunchChecks.Elements(Name, x.Length, "n");
        if (y.Length < n) throw new ArgumentException($"{Name}: y holds {y.Length} elements, x has {n}.", nameof(y));
        if (n == 0) return;
        KernelStubs.convert_to_bf16(device, new(LaunchChecks.GridStrideBlocks(n, Elementwise.Threads), Elementwise.Threads), y: y, x: x, n: n);
    }
}

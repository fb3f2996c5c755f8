namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/activation.cu: ReLU, gated GELU and SwiGLU forward and backward (mirrors of Cpu/ReluOps,
// GatedGeluOps, SwiGluOps); GPT-2's GELU is a GEMM epilogue (IComputeDevice.GemmEpilogue). Grid-stride kernels: 256
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

    /// <summary>
    /// <see cref="Shape"/> for the forward *_bf16_io kernels (bf16 pre-activations in, bf16 out): each of
    /// <paramref name="bf16"/> (the output first, named by <paramref name="names"/>) holds n elements.
    /// </summary>
    public static LaunchShape? Bf16IoShape(string kernel, string names, long count, out int n, params ReadOnlySpan<DeviceSpan<ushort>> bf16)
        => Bf16IoShape(kernel, names, count, 1, out n, backward: false, default, bf16);

    /// <summary>
    /// <see cref="Shape"/> for the backward *_bf16_io kernels: the fp32 incoming gradient <paramref name="dy"/> and each of
    /// <paramref name="bf16"/> (the <paramref name="outputs"/> gradients first, then the saved pre-activations) hold n
    /// elements; two outputs must differ, and no output may overlap dy (another element type).
    /// </summary>
    public static LaunchShape? Bf16IoBackwardShape(string kernel, string names, long count, int outputs, out int n, DeviceSpan<float> dy, params ReadOnlySpan<DeviceSpan<ushort>> bf16)
        => Bf16IoShape(kernel, names, count, outputs, out n, backward: true, dy, bf16);

    private static LaunchShape? Bf16IoShape(string kernel, string names, long count, int outputs, out int n, bool backward, DeviceSpan<float> dy, ReadOnlySpan<DeviceSpan<ushort>> bf16)
    {
        n = LaunchChecks.Elements(kernel, count, "n");
        for (int i = 0; i < bf16.Length; i++)
            if (bf16[i].Length < n) LaunchChecks.AtLeast(kernel, bf16[i], n, "[n] bf16", names.Split(' ')[i]);
        if (backward && dy.Length < n) LaunchChecks.AtLeast(kernel, dy, n, "[n] fp32", "dy");
        if (n == 0) return null;
        if (outputs == 2 && bf16[0].Address == bf16[1].Address)
            throw new ArgumentException($"{kernel}: {names.Split(' ')[0]} and {names.Split(' ')[1]} must be different buffers.", names.Split(' ')[1]);
        bool aligned = !backward || LaunchChecks.Aligned16(dy.Address);
        for (int i = 0; i < bf16.Length; i++)
        {
            aligned &= LaunchChecks.Aligned16(bf16[i].Address);
            if (backward && i < outputs && Overlap(bf16[i].Address, 2L * n, dy.Address, 4L * n))
                throw new ArgumentException($"{kernel}: the bf16 output {names.Split(' ')[i]} overlaps the fp32 input dy; give it its own buffer.", names.Split(' ')[i]);
        }
        return new(LaunchChecks.GridStrideBlocks(aligned ? (n + 3) / 4 : n, Threads), Threads);
    }

    private static bool Overlap(ulong a, long aBytes, ulong b, long bBytes) => a < b + (ulong)bBytes && b < a + (ulong)aBytes;
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

    /// <summary>relu_forward_bf16_io: x and y bf16 [≥ n], n = x.Length (the saved bf16 pre-activation of wi in, wo's operand out).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<ushort> x)
    {
        if (Elementwise.Bf16IoShape("relu_forward_bf16_io", "y x", x.Length, out int n, y, x) is { } shape)
            KernelStubs.relu_forward_bf16_io(device, shape, y: y, x: x, n: n);
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

    /// <summary>relu_backward_bf16_io: dx = bf16(x &gt; 0 ? dy : 0) with x and dx bf16, dy fp32; n = x.Length. dx may not overlap dy.</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> dx, DeviceSpan<float> dy, DeviceSpan<ushort> x)
    {
        if (Elementwise.Bf16IoBackwardShape("relu_backward_bf16_io", "dx x", x.Length, 1, out int n, dy, dx, x) is { } shape)
            KernelStubs.relu_backward_bf16_io(device, shape, dx: dx, dy: dy, x: x, n: n);
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

    /// <summary>gated_gelu_forward_bf16_io: gate, linear and y bf16 [≥ n], n = gate.Length (saved wi_0 / wi_1 outputs in, wo's operand out).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<ushort> gate, DeviceSpan<ushort> linear)
    {
        if (Elementwise.Bf16IoShape("gated_gelu_forward_bf16_io", "y gate linear", gate.Length, out int n, y, gate, linear) is { } shape)
            KernelStubs.gated_gelu_forward_bf16_io(device, shape, y: y, gate: gate, linear: linear, n: n);
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

    /// <summary>gated_gelu_backward_bf16_io: the same with gate, linear, dGate and dLinear bf16 (the wi_0 / wi_1 input-gradient GEMMs' operands), dy fp32.</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> dGate, DeviceSpan<ushort> dLinear, DeviceSpan<float> dy, DeviceSpan<ushort> gate, DeviceSpan<ushort> linear)
    {
        if (Elementwise.Bf16IoBackwardShape("gated_gelu_backward_bf16_io", "dGate dLinear gate linear", gate.Length, 2, out int n, dy, dGate, dLinear, gate, linear) is { } shape)
            KernelStubs.gated_gelu_backward_bf16_io(device, shape, d_gate: dGate, d_linear: dLinear, dy: dy, gate: gate, linear: linear, n: n);
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

    /// <summary>swiglu_forward_bf16_io: gate, up and y bf16 [≥ n] (saved gate_proj / up_proj outputs in, down_proj's operand out).</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> y, DeviceSpan<ushort> gate, DeviceSpan<ushort> up, int n)
    {
        if (Elementwise.Bf16IoShape("swiglu_forward_bf16_io", "y gate up", n, out int count, y, gate, up) is { } shape)
            KernelStubs.swiglu_forward_bf16_io(device, shape, y: y, gate: gate, up: up, n: count);
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

    /// <summary>swiglu_backward_bf16_io: the same with gate, up, dGate and dUp bf16 (the gate_proj / up_proj input-gradient GEMMs' operands), dy fp32.</summary>
    public static void Launch(IComputeDevice device, DeviceSpan<ushort> dGate, DeviceSpan<ushort> dUp, DeviceSpan<float> dy, DeviceSpan<ushort> gate, DeviceSpan<ushort> up, int n)
    {
        if (Elementwise.Bf16IoBackwardShape("swiglu_backward_bf16_io", "dGate dUp gate up", n, 2, out int count, dy, dGate, dUp, gate, up) is { } shape)
            KernelStubs.swiglu_backward_bf16_io(device, shape, d_gate: dGate, d_up: dUp, dy: dy, gate: gate, up: up, n: count);
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

/// <summary>convert_from_bf16: y [n] fp32 = x [n] bf16 widened (exact): a bf16 GEMM output read by an fp32 kernel.</summary>
internal static class ConvertFromBf16
{
    public const string Name = "convert_from_bf16";

    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<ushort> x)
    {
        int n = LaunchChecks.Elements(Name, x.Length, "n");
        if (y.Length < n) throw new ArgumentException($"{Name}: y holds {y.Length} elements, x has {n}.", nameof(y));
        if (n == 0) return;
        KernelStubs.convert_from_bf16(device, new(LaunchChecks.GridStrideBlocks(n, Elementwise.Threads), Elementwise.Threads), y: y, x: x, n: n);
    }
}

/// <summary>
/// round_to_bf16: y = float(bf16(x)), round to nearest even, in fp32 (n = x.Length; y [≥ n], may be x itself): what an fp32
/// kernel reads where the full forward holds a bf16 tensor (the cached decoding steps of T5 and Llama).
/// </summary>
internal static class RoundToBf16
{
    public const string Name = "round_to_bf16";

    public static void Launch(IComputeDevice device, DeviceSpan<float> y, DeviceSpan<float> x)
    {
        int n = LaunchChecks.Elements(Name, x.Length, "n");
        if (y.Length < n) throw new ArgumentException($"{Name}: y holds {y.Length} elements, x has {n}.", nameof(y));
        if (n == 0) return;
        KernelStubs.round_to_bf16(device, new(LaunchChecks.GridStrideBlocks(n, Elementwise.Threads), Elementwise.Threads), y: y, x: x, n: n);
    }
}

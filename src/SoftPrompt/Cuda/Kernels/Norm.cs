namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/norm.cu: LayerNorm (mirror of Cpu/LayerNormOps, GPT-2) and RMS norm (mirror of Cpu/RmsNormOps,
// T5 and Llama). One warp per row, 8 rows per 256-thread block.

/// <summary>The shape checks and grid every norm kernel shares.</summary>
internal static class NormLaunch
{
    public const int Threads = 256;

    public static int Blocks(int rows) => LaunchChecks.WarpPerRowBlocks(rows, Threads);

    /// <summary>Checks y, x [N, C], weight [C] and rstd [N] (absent allowed); false when there is nothing to launch.</summary>
    public static bool CheckForward<TOut>(string kernel, DeviceSpan<TOut> y, DeviceSpan<float> rstd, DeviceSpan<float> x, DeviceSpan<float> weight, int rows, int channels)
        where TOut : unmanaged
    {
        LaunchChecks.NotBelow(kernel, rows, 0);
        LaunchChecks.NotBelow(kernel, channels, 1);
        long n = (long)rows * channels;
        LaunchChecks.AtLeast(kernel, y, n, "[N, C]");
        LaunchChecks.AtLeast(kernel, x, n, "[N, C]");
        LaunchChecks.AtLeast(kernel, weight, channels, "[C]");
        LaunchChecks.AbsentOrAtLeast(kernel, rstd, rows, "[N]");
        return rows > 0;
    }

    /// <summary>Checks dx, dy, x [N, C], weight [C] and rstd [N], and that dx aliases neither dy nor x; false when there is nothing to launch.</summary>
    public static bool CheckBackward(string kernel, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight, DeviceSpan<float> rstd,
        int rows, int channels)
    {
        LaunchChecks.NotBelow(kernel, rows, 0);
        LaunchChecks.NotBelow(kernel, channels, 1);
        long n = (long)rows * channels;
        LaunchChecks.AtLeast(kernel, dx, n, "[N, C]");
        LaunchChecks.AtLeast(kernel, dy, n, "[N, C]");
        LaunchChecks.AtLeast(kernel, x, n, "[N, C]");
        LaunchChecks.AtLeast(kernel, weight, channels, "[C]");
        LaunchChecks.AtLeast(kernel, rstd, rows, "[N]");
        if (rows == 0) return false;
        if (dx.Address == dy.Address || dx.Address == x.Address)
            throw new ArgumentException($"{kernel}: dx must not alias dy or x (the gradient is added into dx).", nameof(dx));
        return true;
    }
}

/// <summary>
/// layernorm_forward: y = (x − mean)·rstd·weight + bias over the last axis, saving mean [N] and rstd [N]
/// (LayerNormOps.Forward). x, y [N, C] (y must not alias x); weight, bias [C]. mean/rstd may be absent (length 0) when nothing is saved.
/// </summary>
internal static class LayerNormForward
{
    public const string Name = "layernorm_forward";

    /// <summary>
    /// y fp32 (TStorage float), or bf16 (ushort: layernorm_forward_bf16, the fp32 result rounded to nearest even: a bf16
    /// GEMM's operand); mean, rstd fp32 either way.
    /// </summary>
    public static void Launch<TStorage>(IComputeDevice device, DeviceSpan<TStorage> y, DeviceSpan<float> mean, DeviceSpan<float> rstd, DeviceSpan<float> x,
        DeviceSpan<float> weight, DeviceSpan<float> bias, int rows, int channels, float epsilon) where TStorage : unmanaged
    {
        string name = typeof(TStorage) == typeof(float) ? Name : Name + "_bf16";
        LaunchChecks.AtLeast(name, bias, channels, "[C]");
        LaunchChecks.AbsentOrAtLeast(name, mean, rows, "[N]");
        if (!NormLaunch.CheckForward(name, y, rstd, x, weight, rows, channels)) return;
        if (typeof(TStorage) == typeof(float) && y.Address == x.Address) throw new ArgumentException($"{Name}: y must not alias x (the backward needs x).", nameof(y));
        KernelStubs.layernorm_forward(device, new(NormLaunch.Blocks(rows), NormLaunch.Threads), y: y, mean: mean, rstd: rstd, x: x, weight: weight, bias: bias, rows: rows, channels: channels, epsilon: epsilon);
    }
}

/// <summary>
/// layernorm_backward: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·weight, x̂ = (x − mean)·rstd — the input gradient
/// ADDED into dx, so the residual add is fused (LayerNormOps.Backward). dx, dy, x [N, C]; weight [C]; mean, rstd [N]
/// from the forward. dx must not alias dy or x.
/// </summary>
internal static class LayerNormBackward
{
    public const string Name = "layernorm_backward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> mean, DeviceSpan<float> rstd, int rows, int channels)
    {
        LaunchChecks.AtLeast(Name, mean, rows, "[N]");
        if (!NormLaunch.CheckBackward(Name, dx, dy, x, weight, rstd, rows, channels)) return;
        KernelStubs.layernorm_backward(device, new(NormLaunch.Blocks(rows), NormLaunch.Threads), dx: dx, dy: dy, x: x, weight: weight, mean: mean, rstd: rstd, rows: rows, channels: channels);
    }

    /// <summary>
    /// layernorm_backward_bf16: the same, and the updated dx also into dxBf16 [N, C] rounded once to nearest even (bit for
    /// bit convert_to_bf16 of dx after the fp32 launch): the residual gradient stays fp32, the copy is the next bf16 GEMM's operand.
    /// </summary>
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<ushort> dxBf16, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> mean, DeviceSpan<float> rstd, int rows, int channels)
    {
        const string name = Name + "_bf16";
        LaunchChecks.AtLeast(name, mean, rows, "[N]");
        LaunchChecks.AtLeast(name, dxBf16, (long)rows * channels, "[N, C]");
        if (!NormLaunch.CheckBackward(name, dx, dy, x, weight, rstd, rows, channels)) return;
        KernelStubs.layernorm_backward_bf16(device, new(NormLaunch.Blocks(rows), NormLaunch.Threads), dx: dx, dx_bf16: dxBf16, dy: dy, x: x, weight: weight, mean: mean, rstd: rstd, rows: rows, channels: channels);
    }
}

/// <summary>
/// rmsnorm_forward: y = x·rstd·weight over the last axis, rstd = 1/sqrt(mean(x²) + epsilon), saving rstd [N]
/// (RmsNormOps.Forward). x, y [N, C] (y may alias x); weight [C]. rstd may be absent (length 0) when nothing is saved.
/// </summary>
internal static class RmsNormForward
{
    public const string Name = "rmsnorm_forward";

    /// <summary>y fp32 (TStorage float), or bf16 (ushort: rmsnorm_forward_bf16, rounded to nearest even: a bf16 GEMM's operand); rstd fp32 either way.</summary>
    public static void Launch<TStorage>(IComputeDevice device, DeviceSpan<TStorage> y, DeviceSpan<float> rstd, DeviceSpan<float> x, DeviceSpan<float> weight,
        int rows, int channels, float epsilon) where TStorage : unmanaged
    {
        if (!NormLaunch.CheckForward(typeof(TStorage) == typeof(float) ? Name : Name + "_bf16", y, rstd, x, weight, rows, channels)) return;
        KernelStubs.rmsnorm_forward(device, new(NormLaunch.Blocks(rows), NormLaunch.Threads), y: y, rstd: rstd, x: x, weight: weight, rows: rows, channels: channels, epsilon: epsilon);
    }
}

/// <summary>
/// rmsnorm_backward: dx += rstd·(g − x̂·mean(g·x̂)), g = dy·weight, x̂ = x·rstd — the input gradient ADDED into dx, so the
/// residual add is fused (RmsNormOps.Backward). dx, dy, x [N, C]; weight [C]; rstd [N] from the forward. dx must not
/// alias dy or x.
/// </summary>
internal static class RmsNormBackward
{
    public const string Name = "rmsnorm_backward";

    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> rstd, int rows, int channels)
    {
        if (!NormLaunch.CheckBackward(Name, dx, dy, x, weight, rstd, rows, channels)) return;
        KernelStubs.rmsnorm_backward(device, new(NormLaunch.Blocks(rows), NormLaunch.Threads), dx: dx, dy: dy, x: x, weight: weight, rstd: rstd, rows: rows, channels: channels);
    }

    /// <summary>
    /// rmsnorm_backward_bf16: the same, and the updated dx also into dxBf16 [N, C] rounded once to nearest even (bit for
    /// bit convert_to_bf16 of dx after the fp32 launch): the residual gradient stays fp32, the copy is the next bf16 GEMM's operand.
    /// </summary>
    public static void Launch(IComputeDevice device, DeviceSpan<float> dx, DeviceSpan<ushort> dxBf16, DeviceSpan<float> dy, DeviceSpan<float> x, DeviceSpan<float> weight,
        DeviceSpan<float> rstd, int rows, int channels)
    {
        const string name = Name + "_bf16";
        LaunchChecks.AtLeast(name, dxBf16, (long)rows * channels, "[N, C]");
        if (!NormLaunch.CheckBackward(name, dx, dy, x, weight, rstd, rows, channels)) return;
        KernelStubs.rmsnorm_backward_bf16(device, new(NormLaunch.Blocks(rows), NormLaunch.Threads), dx: dx, dx_bf16: dxBf16, dy: dy, x: x, weight: weight, rstd: rstd, rows: rows, channels: channels);
    }
}

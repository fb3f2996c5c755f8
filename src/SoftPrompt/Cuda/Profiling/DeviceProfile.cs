namespace SoftPrompt.Cuda;

/// <summary>One row of a device profile: every op with the same label, per step.</summary>
/// <param name="Calls">Calls per step.</param>
/// <param name="Milliseconds">Device time per step.</param>
/// <param name="Flops">GEMM floating-point operations per step (2·m·n·k per call); 0 for other ops.</param>
public sealed record DeviceOpTime(string Label, DeviceOpKind Kind, double Calls, double Milliseconds, double Flops)
{
    /// <summary>Achieved TFLOP/s of a GEMM row; null for other ops or when no time was measured.</summary>
    public double? Tflops => Flops > 0 && Milliseconds > 0 ? Flops / (Milliseconds * 1e9) : null;
}

/// <summary>Where a step's device time went, by op label, sorted by time (largest first).</summary>
/// <param name="Ops">The rows, per step.</param>
/// <param name="Steps">How many steps the totals were divided by.</param>
public sealed record DeviceProfile(IReadOnlyList<DeviceOpTime> Ops, int Steps)
{
    /// <summary>The sum of every op's device time per step (ops do not overlap: one stream).</summary>
    public double OpMilliseconds => Ops.Sum(o => o.Milliseconds);

    /// <summary>Ops per step.</summary>
    public double Calls => Ops.Sum(o => o.Calls);
}

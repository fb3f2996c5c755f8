using System.Diagnostics;
using System.Globalization;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `bench --profile` on a device engine: a few more training steps with every device op timed (CUDA events on a GPU,
/// the host clock on the emulator), and the step's wall time around them. The gap between the two is what the device
/// did not spend on our ops: host work, launch overhead, idle time.
/// </summary>
internal sealed record DeviceStepProfile(DeviceProfile Profile, double WallMilliseconds)
{
    /// <summary>Profiled steps averaged (fewer when the bench runs fewer steps).</summary>
    public const int MaxSteps = 3;

    /// <summary>
    /// Runs one profiled step that is thrown away (the profiler's event pool grows to the step's op count there), then
    /// <paramref name="steps"/> profiled steps, and returns their per-step averages.
    /// </summary>
    public static DeviceStepProfile Measure(IDeviceEngine engine, TokenBatch batch, OptimizerSettings optimizer, int firstStep, int ensemble, int steps)
    {
        var device = engine.Device;
        var profiler = device.StartProfiling();
        try
        {
            int step = firstStep;
            Step(engine, batch, optimizer, step++, ensemble);
            _ = engine.LastGradientNorm;
            profiler.Reset();
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < steps; s++) Step(engine, batch, optimizer, step++, ensemble);
            _ = engine.LastGradientNorm;
            device.Synchronize();
            double wall = clock.Elapsed.TotalMilliseconds / steps;
            return new DeviceStepProfile(profiler.Read(steps), wall);
        }
        finally
        {
            device.StopProfiling();
        }
    }

    private static void Step(IDeviceEngine engine, TokenBatch batch, OptimizerSettings optimizer, int step, int ensemble)
    {
        engine.ForwardBackward(batch);
        engine.OptimizerStep(optimizer, step, 1e-3f, ensemble);
    }

    /// <summary>What the device did not spend on timed ops, per step.</summary>
    public double GapMilliseconds => WallMilliseconds - Profile.OpMilliseconds;

    /// <summary>The table's rows for `--json`: label, calls and ms per step, share of the step's wall time, TFLOP/s of GEMMs.</summary>
    public List<Dictionary<string, object>> JsonRows() =>
    [
        .. Profile.Ops.Select(o =>
        {
            var row = new Dictionary<string, object> { ["label"] = o.Label, ["calls"] = o.Calls, ["ms"] = o.Milliseconds, ["share"] = Share(o) };
            if (o.Tflops is { } tflops) row["tflops"] = tflops;
            return row;
        }),
    ];

    /// <param name="timedMilliseconds">The unprofiled step: profiling adds two event records per op to the host's work.</param>
    public void Print(TextWriter output, double timedMilliseconds)
    {
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(inv,
            $"device profile ({Profile.Steps} profiled step{(Profile.Steps == 1 ? "" : "s")} after the timing): ops {Profile.OpMilliseconds:F2} ms of a {WallMilliseconds:F2} ms step " +
            $"(unprofiled {timedMilliseconds:F2} ms), gap {GapMilliseconds:F2} ms ({GapMilliseconds / WallMilliseconds:P0}: host work, launch overhead, idle device)"));
        int width = Math.Max("op".Length, Profile.Ops.Select(o => o.Label.Length).DefaultIfEmpty(0).Max());
        output.WriteLine(string.Create(inv, $"  {"op".PadRight(width)}  {"calls",7}  {"ms/step",9}  {"share",6}  {"TFLOP/s",8}"));
        foreach (var o in Profile.Ops)
            output.WriteLine(string.Create(inv,
                $"  {o.Label.PadRight(width)}  {o.Calls,7:0.#}  {o.Milliseconds,9:F3}  {Share(o),6:P1}  {(o.Tflops is { } t ? t.ToString("F1", inv) : ""),8}"));
    }

    private double Share(DeviceOpTime op) => WallMilliseconds > 0 ? op.Milliseconds / WallMilliseconds : 0;
}

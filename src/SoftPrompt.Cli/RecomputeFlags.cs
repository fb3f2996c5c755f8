using System.CommandLine;
using System.Globalization;
using SoftPrompt.Engines;

namespace SoftPrompt.Cli;

/// <summary>`--recompute auto|off|layers` (what a device engine keeps for the reverse pass) and, for plans, `--device-memory GIB`.</summary>
internal sealed class RecomputeFlags
{
    public readonly Option<string?> Recompute = new("--recompute")
    {
        Description = "Device engines: auto (default; keep only each layer's input and recompute the layer in the reverse pass when the full plan does not fit " +
            "the GPU's free memory) | off (keep every layer's activations) | layers (always recompute)",
    };
    public readonly Option<double?> DeviceMemory = new("--device-memory")
    {
        Description = "With --plan: the GPU memory in GiB to plan for (e.g. 37.25 for a 40 GB card, 74.5 for 80 GB); --recompute auto decides by it",
    };

    public RecomputeFlags() => Recompute.AcceptOnlyFromAmong("auto", "off", "layers");

    public Recomputation Read(ParseResult r) => r.GetValue(Recompute) switch
    {
        "off" => Recomputation.Off,
        "layers" => Recomputation.PerLayer,
        _ => Recomputation.Auto,
    };

    /// <summary>The --device-memory budget in bytes (unlimited when not given).</summary>
    public long DeviceBytes(ParseResult r)
    {
        double? gib = r.GetValue(DeviceMemory);
        if (gib is null) return long.MaxValue;
        if (!(gib > 0 && gib < 1 << 20))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"--device-memory must be a positive number of GiB, got {gib}."));
        return (long)(gib.Value * (1L << 30));
    }

    public static string Describe(Recomputation recomputation) => recomputation switch
    {
        Recomputation.Off => "off",
        Recomputation.PerLayer => "layers",
        _ => "auto",
    };
}

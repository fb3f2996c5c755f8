using System.CommandLine;
using System.Globalization;
using SoftPrompt.Engines;

namespace SoftPrompt.Cli;

/// <summary>
/// The flags every verb that runs an engine shares: `--device`, `--precision` (with `--tf32` as its alias) and, for
/// verbs that run a reverse pass, `--recompute` (and `--device-memory` for plans). One place, so the verbs cannot drift.
/// </summary>
internal sealed class EngineFlags
{
    public readonly Option<string?> Device = new("--device")
    {
        Description = $"{string.Join(" | ", EngineFactory.Devices)} (default: cuda when a GPU is present, else cpu)",
    };
    public readonly Option<string?> Precision = new("--precision")
    {
        Description = "Device engines' arithmetic: fp32 (default; matches the CPU reference) | tf32 (TF32 tensor cores for the fp32 GEMMs) | " +
            "bf16 (block weights stored in bf16, their GEMMs on bf16 tensor cores with fp32 sums)",
    };
    public readonly Option<bool> Tf32 = new("--tf32") { Description = "Same as --precision tf32" };
    public readonly Option<string?> Recompute = new("--recompute")
    {
        Description = "Device engines: auto (default; keep only each layer's input and recompute the layer in the reverse pass when the full plan does not fit " +
            "the GPU's free memory) | off (keep every layer's activations) | layers (always recompute)",
    };
    public readonly Option<double?> DeviceMemory = new("--device-memory")
    {
        Description = "With --plan: the GPU memory in GiB to plan for (e.g. 37.25 for a 40 GB card, 74.5 for 80 GB); --recompute auto decides by it",
    };

    private readonly bool reversePass, plans;

    /// <param name="reversePass">The verb trains or times training steps, so what the reverse pass keeps is a choice.</param>
    /// <param name="plans">The verb can print a device plan for a GPU of a given size.</param>
    public EngineFlags(bool reversePass = false, bool plans = false)
    {
        this.reversePass = reversePass;
        this.plans = plans;
        Precision.AcceptOnlyFromAmong("fp32", "tf32", "bf16");
        Recompute.AcceptOnlyFromAmong("auto", "off", "layers");
    }

    public IEnumerable<Option> All =>
        ((IEnumerable<Option>)[Device, Precision, Tf32]).Concat(reversePass ? [Recompute] : []).Concat(plans ? [DeviceMemory] : []);

    public void AddTo(Command command)
    {
        foreach (var option in All) command.Options.Add(option);
    }

    public string ReadDevice(ParseResult r) => r.GetValue(Device) ?? EngineFactory.DefaultDevice;

    public EngineOptions Read(ParseResult r) => new(ReadPrecision(r), reversePass ? ReadRecomputation(r) : Recomputation.Auto);

    public Precision ReadPrecision(ParseResult r)
    {
        string? named = r.GetValue(Precision);
        if (r.GetValue(Tf32) && named is not null and not "tf32")
            throw new ArgumentException($"--tf32 means --precision tf32, which conflicts with --precision {named}: give one of them.");
        return named switch
        {
            "tf32" => Engines.Precision.Tf32,
            "bf16" => Engines.Precision.Bf16,
            "fp32" => Engines.Precision.Fp32,
            _ => r.GetValue(Tf32) ? Engines.Precision.Tf32 : Engines.Precision.Fp32,
        };
    }

    private Recomputation ReadRecomputation(ParseResult r) => r.GetValue(Recompute) switch
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

    /// <summary>How prompt files and reports name it: "cuda", "cuda (tf32)", "cuda-emulated (bf16)".</summary>
    public static string Describe(string device, Precision precision) => precision == Engines.Precision.Fp32 ? device : $"{device} ({precision.ToString().ToLowerInvariant()})";

    public static string Describe(Recomputation recomputation) => recomputation switch
    {
        Recomputation.Off => "off",
        Recomputation.PerLayer => "layers",
        _ => "auto",
    };
}

using System.CommandLine;
using SoftPrompt.Engines;

namespace SoftPrompt.Cli;

/// <summary>`--precision fp32|tf32|bf16` on every verb that runs an engine, and `--tf32`, kept as its alias.</summary>
internal sealed class PrecisionFlags
{
    public readonly Option<string?> Precision = new("--precision")
    {
        Description = "Device engines' arithmetic: fp32 (default; matches the CPU reference) | tf32 (TF32 tensor cores for the fp32 GEMMs) | " +
            "bf16 (block weights stored in bf16, their GEMMs on bf16 tensor cores with fp32 sums)",
    };
    public readonly Option<bool> Tf32 = new("--tf32") { Description = "Same as --precision tf32" };

    public PrecisionFlags() => Precision.AcceptOnlyFromAmong("fp32", "tf32", "bf16");

    public IEnumerable<Option> All => [Precision, Tf32];

    public Precision Read(ParseResult r)
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

    /// <summary>How prompt files and reports name it: "cuda", "cuda (tf32)", "cuda-emulated (bf16)".</summary>
    public static string Describe(string device, Precision precision) => precision == Engines.Precision.Fp32 ? device : $"{device} ({precision.ToString().ToLowerInvariant()})";
}

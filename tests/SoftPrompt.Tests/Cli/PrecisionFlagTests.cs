using System.Text.Json;

namespace SoftPrompt.Tests.Cli;

/// <summary>`--precision fp32|tf32|bf16` (and `--tf32`, its alias) as the verbs read it.</summary>
public sealed class PrecisionFlagTests
{
    private static long WeightBytes(params string[] extra)
    {
        var (code, stdout, stderr) = CliRunner.Run(["bench", "--shape", "gpt2-medium", "--plan", "--json", .. extra]);
        Assert.That(code, Is.Zero, stderr);
        return JsonDocument.Parse(stdout).RootElement.GetProperty("weights_bytes").GetInt64();
    }

    [Test]
    public void Bf16PlansTheBlockWeightsAtHalfTheirBytes()
    {
        long fp32 = WeightBytes(), bf16 = WeightBytes("--precision", "bf16");
        Assert.That(WeightBytes("--precision", "tf32"), Is.EqualTo(fp32), "TF32 changes the arithmetic, not the storage");
        // gpt2-medium's blocks hold 302M of its 355M parameters; its tied head adds a bf16 copy of wte (50257 × 1024).
        Assert.That(fp32 - bf16, Is.EqualTo(2L * 24 * 12 * 1024 * 1024 - 2L * 50257 * 1024).Within(1 << 20));
    }

    [TestCase("bench", "--shape", "gpt2-small", "--plan", "--tf32", "--precision", "bf16")]
    [TestCase("eval", "--model", "m", "--prompt", "p", "--data", "d", "--tf32", "--precision", "fp32")]
    public void Tf32ConflictingWithAnotherPrecisionIsRefused(params string[] args)
    {
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("--tf32 means --precision tf32"));
    }

    [Test]
    public void AnUnknownPrecisionNamesTheChoices()
    {
        var (code, _, stderr) = CliRunner.Run("bench", "--shape", "gpt2-small", "--plan", "--precision", "fp8");
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("fp8").And.Contain("bf16"));
    }

    [Test]
    public void TheCpuEngineRefusesBf16WithTheFlagNamed()
    {
        var (code, _, stderr) = CliRunner.Run("bench", "--shape", "gpt2-small", "--device", "cpu", "--precision", "bf16", "--steps", "1");
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("--precision bf16 needs a device engine (--device cuda or cuda-emulated)"));
    }
}

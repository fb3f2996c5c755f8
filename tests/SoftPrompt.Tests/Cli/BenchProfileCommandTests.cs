using System.Text.Json;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt bench --profile`: where a step's time goes, by kind of op on the CPU engines, by kernel and GEMM shape on device engines.</summary>
public sealed class BenchProfileCommandTests
{
    private static string DemoModel => Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo", "model");

    [Test]
    public void TheOpsOfAStepAddUpToTheStep()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench", "--model", DemoModel, "--device", "cpu", "--batch-size", "2", "--seq-len", "12", "--prompt-length", "4",
            "--steps", "2", "--warmup", "1", "--profile", "--json");
        Assert.That(code, Is.Zero, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        double step = json.GetProperty("ms_per_step").GetDouble();
        var ops = json.GetProperty("ms_per_step_by_op").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        Assert.That(ops.Keys, Is.SupersetOf(new[] { "gemm", "attention", "norm", "activation", "head", "optimizer", "other" }));
        Assert.That(ops.Values.Sum(), Is.EqualTo(step).Within(1e-6).Percent, "the ops and the glue between them are the step");
        foreach (var op in new[] { "gemm", "attention", "norm", "activation", "head" })
            Assert.That(ops[op], Is.GreaterThan(0), $"a GPT-2 step runs {op} ops");
        Assert.That(ops["rope"], Is.Zero, "GPT-2 has no rotary embedding");
        Assert.That(ops["other"], Is.GreaterThanOrEqualTo(0).And.LessThan(step / 2), "measured ops overlap or miss most of the step");
    }

    [Test]
    public void WithoutTheFlagNoOpIsTimed()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench", "--model", DemoModel, "--device", "cpu", "--batch-size", "1", "--seq-len", "8", "--prompt-length", "2",
            "--steps", "1", "--warmup", "0", "--json");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(JsonDocument.Parse(stdout).RootElement.TryGetProperty("ms_per_step_by_op", out _), Is.False);
        Assert.That(SoftPrompt.Cpu.CpuOpTimes.Totals().Sum(t => t.Calls), Is.Zero, "ops were timed without --profile");
    }

    [Test]
    public void OnADeviceEngineItTimesEachKernelAndGemmShape()
    {
        if (!SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "no emulator");
        string[] args = ["bench", "--model", DemoModel, "--device", "cuda-emulated", "--batch-size", "2", "--seq-len", "12", "--prompt-length", "4",
            "--steps", "2", "--warmup", "1", "--profile"];
        var (code, stdout, stderr) = CliRunner.Run([.. args, "--json"]);
        Assert.That(code, Is.Zero, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        var rows = json.GetProperty("profile").EnumerateArray().ToList();
        var labels = rows.Select(r => r.GetProperty("label").GetString()).ToList();
        Assert.That(labels, Does.Contain("layernorm_forward").And.Contain("cross_entropy").And.Contain("adamw_step"));
        // The demo model: 3 layers, d = 64.
        Assert.That(labels.Where(l => l!.StartsWith("gemm fp32 ", StringComparison.Ordinal)), Is.Not.Empty);
        var layernorm = rows.Single(r => r.GetProperty("label").GetString() == "layernorm_forward");
        Assert.That(layernorm.GetProperty("calls").GetDouble(), Is.EqualTo(2 * 3 + 1), "two per block and the final norm, per step (not per profiled run)");
        foreach (var row in rows)
        {
            bool gemm = row.GetProperty("label").GetString()!.StartsWith("gemm ", StringComparison.Ordinal);
            Assert.That(row.TryGetProperty("tflops", out _), Is.EqualTo(gemm), $"{row}: TFLOP/s is given for GEMMs only");
            Assert.That(row.GetProperty("ms").GetDouble(), Is.GreaterThanOrEqualTo(0));
        }
        double opsMs = rows.Sum(r => r.GetProperty("ms").GetDouble());
        Assert.That(json.GetProperty("profile_ops_ms_per_step").GetDouble(), Is.EqualTo(opsMs).Within(1e-9).Percent);
        Assert.That(opsMs, Is.GreaterThan(0).And.LessThanOrEqualTo(json.GetProperty("profile_ms_per_step").GetDouble()));
        Assert.That(rows.Sum(r => r.GetProperty("share").GetDouble()), Is.EqualTo(opsMs / json.GetProperty("profile_ms_per_step").GetDouble()).Within(1e-9));
        Assert.That(json.TryGetProperty("ms_per_step_by_op", out _), Is.False, "the CPU op times are for CPU engines");

        (code, stdout, stderr) = CliRunner.Run(args);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("device profile (2 profiled steps after the timing)"));
        Assert.That(stdout, Does.Match(@"\n  layernorm_forward +7 +\d+\.\d{3} +\d+\.\d %"));
        Assert.That(stdout, Does.Match(@"\n  gemm fp32 \d+×\d+×\d+ \([NT],[NT]\) +\d+ +\d+\.\d{3} +\d+\.\d % +\d+\.\d"));
    }

    [Test]
    public void WithoutTheFlagADeviceEngineIsNotProfiled()
    {
        if (!SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "no emulator");
        var (code, stdout, stderr) = CliRunner.Run("bench", "--model", DemoModel, "--device", "cuda-emulated", "--batch-size", "1", "--seq-len", "8", "--prompt-length", "2",
            "--steps", "1", "--warmup", "0", "--json");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(JsonDocument.Parse(stdout).RootElement.TryGetProperty("profile", out _), Is.False);
    }
}

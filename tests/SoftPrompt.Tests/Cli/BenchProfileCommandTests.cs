using System.Text.Json;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt bench --profile`: where a CPU step's time goes, by kind of op.</summary>
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
}

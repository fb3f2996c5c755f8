using System.Text.Json;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt bench --decode`: generation speed with and without the KV cache, on the bundled demo model.</summary>
public sealed class BenchDecodeCommandTests
{
    private static string DemoModel => Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo", "model");

    [TestCase(true, "cpu", "model")]
    [TestCase(false, "cpu", "model")]
    [TestCase(true, "cuda-emulated", "model")]
    [TestCase(true, "cuda-emulated", "t5/model")]
    public void ReportsTheGenerationItRan(bool cache, string device, string model)
    {
        if (device == "cuda-emulated" && !SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "the kernel emulator is not built");
        string[] args = ["bench", "--model", Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo", model), "--device", device, "--decode", "--batch-size", "3", "--seq-len", "5", "--prompt-length", "4",
            "--new-tokens", "6", "--steps", "1", "--json", .. cache ? Array.Empty<string>() : ["--no-cache"]];
        var (code, stdout, stderr) = CliRunner.Run(args);
        Assert.That(code, Is.Zero, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.That(json.GetProperty("kv_cache").GetBoolean(), Is.EqualTo(cache));
        Assert.That(json.GetProperty("device").GetString(), Is.EqualTo(device));
        Assert.That(json.GetProperty("new_tokens").GetInt32(), Is.EqualTo(6));
        Assert.That(json.GetProperty("batch_size").GetInt32(), Is.EqualTo(3));
        Assert.That(json.GetProperty("peak_rss_bytes").GetInt64(), Is.GreaterThan(0));
    }

    [Test]
    public void RefusesMoreTokensThanTheModelHasPositions()
    {
        var (code, _, stderr) = CliRunner.Run("bench", "--model", DemoModel, "--device", "cpu", "--decode", "--seq-len", "5", "--prompt-length", "4", "--new-tokens", "100000");
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("new tokens exceed"));
    }
}

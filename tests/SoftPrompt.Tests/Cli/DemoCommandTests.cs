namespace SoftPrompt.Tests.Cli;

public sealed class DemoCommandTests
{
    /// <remarks>bf16 block weights and GEMMs on the emulated device engine reach what fp32 reaches on the demo's copy task.</remarks>
    [Category("Slow")]
    [Test]
    public void Bf16PromptsReachTheTaskTokensAccuracyToo()
    {
        if (!SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        var (code, stdout, stderr) = CliRunner.Run("demo", "--device", "cuda-emulated", "--precision", "bf16", "--tasks", "copy");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        Assert.That(stdout, Does.Contain("cuda-emulated (bf16)").And.Contain("1 of 1 tasks reach at least 90%"), stdout);
    }

    [Category("Slow")]
    [Test]
    public void TunedPromptsReachTheTaskTokensAccuracy()
    {
        var (code, stdout, stderr) = CliRunner.Run("demo", "--device", "cpu", "--tasks", "reverse,majority");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        Assert.That(stdout, Does.Contain("2 of 2 tasks reach at least 90%"), stdout);
    }

    [Category("Slow")]
    [Test]
    public void TunedPromptsReachTheT5TaskTokensAccuracy()
    {
        // The T5 demo reuses the GPT-2 demo's rows; its prompt goes to the encoder (make_demo_t5.py: 4 of 4 tasks in PyTorch).
        var (code, stdout, stderr) = CliRunner.Run("demo", "--model-family", "t5", "--tasks", "reverse,majority");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        Assert.That(stdout, Does.Contain("tiny T5 (2+2 layers").And.Contain($"on device {SoftPrompt.Engines.EngineFactory.DefaultDevice}"),
            "without --device the demo runs where the library's default puts it: the GPU when one is usable, else the CPU");
        Assert.That(stdout, Does.Contain("2 of 2 tasks reach at least 90%"), stdout);
    }

    [Category("Slow")]
    [Test]
    public void TunedPromptsReachTheLlamaTaskTokensAccuracy()
    {
        // Llama is decoder-only like GPT-2 and reads the GPT-2 demo's rows as they are (make_demo_llama.py: 4 of 4 tasks in PyTorch).
        var (code, stdout, stderr) = CliRunner.Run("demo", "--model-family", "llama", "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        Assert.That(stdout, Does.Contain("tiny Llama (2 layers, d=64, 4 query heads on 2 key/value heads (grouped-query)").And.Contain("on device cpu"), stdout);
        Assert.That(stdout, Does.Contain("4 of 4 tasks reach at least 90%"), stdout);
    }

    /// <summary>
    /// The bundled model and its PyTorch-tuned prompts agree with the generator: each reference prompt scores on the dev
    /// rows what make_demo_*.py measured (a wrong weight name, layout or config field would not).
    /// </summary>
    [Category("Slow")]
    [TestCase("t5")]
    [TestCase("llama")]
    public void TheDemosReferencePromptsScoreAsInPyTorch(string family)
    {
        string demo = SoftPrompt.Cli.Commands.DemoCommand.DirectoryOf(family);
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(demo, "tasks.json")));
        foreach (var task in manifest.RootElement.GetProperty("tasks").EnumerateArray())
        {
            string name = task.GetProperty("name").GetString()!;
            var (code, stdout, stderr) = CliRunner.Run("eval", "--model", Path.Combine(demo, "model"), "--prompt", Path.Combine(demo, "prompts", name + ".safetensors"),
                "--data", Path.GetFullPath(Path.Combine(demo, task.GetProperty("dev").GetString()!)), "--device", "cpu", "--json");
            Assert.That(code, Is.EqualTo(0), stderr);
            using var result = System.Text.Json.JsonDocument.Parse(stdout);
            var metrics = result.RootElement.GetProperty("metrics");
            double pytorch = task.GetProperty("accuracy").GetProperty("reference_prompt").GetDouble();
            Assert.That(metrics.GetProperty("teacher_forced_exact_match").GetDouble(), Is.EqualTo(pytorch).Within(0.0051), $"{name}: one dev row at most may flip");
            Assert.That(metrics.GetProperty("exact_match").GetDouble(), Is.EqualTo(metrics.GetProperty("teacher_forced_exact_match").GetDouble()).Within(1e-12),
                $"{name}: greedy decoding to <eos> reproduces exactly the rows whose teacher-forced argmaxes match");
        }
    }

    [Category("Slow")]
    [Test]
    public void TooFewStepsDoNotReachIt()
    {
        var (code, stdout, _) = CliRunner.Run("demo", "--device", "cpu", "--tasks", "reverse", "--steps", "1");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("0 of 1 tasks reach"), stdout);
    }
}

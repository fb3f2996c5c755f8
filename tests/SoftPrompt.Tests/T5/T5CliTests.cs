using SoftPrompt.Checkpoints;
using SoftPrompt.Tests.Cli;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.T5;

/// <summary>`softprompt train` and `info` on a T5 directory (the CLI opens models through EngineFactory).</summary>
public sealed class T5CliTests
{
    private string scratch = null!;
    private static string Model => Path.Combine(T5Fixture.Root, "v1_1");
    private static string Sgd(string file) => Path.Combine(T5Fixture.Root, "sgd", file);

    [SetUp]
    public void SetUp() => Directory.CreateDirectory(scratch = Path.Combine(Path.GetTempPath(), "softprompt-t5-cli-" + Guid.NewGuid().ToString("N")));

    [TearDown]
    public void TearDown() => Directory.Delete(scratch, recursive: true);

    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void OneFullBatchSgdStepEqualsPyTorch(string device)
    {
        string output = Path.Combine(scratch, "prompt.safetensors");
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", Model, "--data", Sgd("train.jsonl"), "--optimizer", "sgd", "--lr", "0.5",
            "--steps", "1", "--batch-size", "5", "--no-shuffle", "--init", Sgd("init.safetensors"), "--out", output, "--device", device);
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        var trained = PromptFile.Load(output);
        float[] expected;
        using (var file = SafeTensorFile.Open(Sgd("expected.safetensors"))) expected = file.Read<float>(PromptFile.TensorName);
        Assert.That(trained.Length, Is.EqualTo(4));
        double worst = trained.Values.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
        Assert.That(worst, Is.LessThan(2e-6), "max |trained − PyTorch| after one step");
        Assert.That(trained.Metadata[PromptFile.FamilyKey], Is.EqualTo("t5"));

        var (infoCode, info, _) = CliRunner.Run("info", Model, "--prompt", output);
        Assert.That(infoCode, Is.EqualTo(0));
        Assert.That(info, Does.Contain("4 vectors × 32 = 128 parameters").And.Contain("belongs      yes"));
    }

    [Test]
    public void InfoDescribesAT5Model()
    {
        var (code, stdout, stderr) = CliRunner.Run("info", Model, "--prompt-length", "10");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("family       t5 (v1.1, gated-gelu").And.Contain("layers       2 encoder + 3 decoder")
            .And.Contain("d_model      32 (3 heads × d_kv 8)").And.Contain("320 trainable parameters"));
    }

    [Test]
    public void CudaWithoutAGpuSaysWhy()
    {
        if (SoftPrompt.Engines.EngineFactory.DefaultDevice == "cuda") Assert.Ignore("A GPU is present.");
        var (code, _, stderr) = CliRunner.Run("train", "--model", Model, "--data", Sgd("train.jsonl"), "--steps", "1",
            "--out", Path.Combine(scratch, "p.safetensors"), "--device", "cuda");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("--device cuda:"));
    }
}

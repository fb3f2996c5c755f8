using SoftPrompt.Tests.Cli;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Llama;

/// <summary>The CLI on a Llama-style directory (the PyTorch fixture model, pre-tokenized demo rows): info, train, eval.</summary>
public sealed class LlamaCliTests : CliScratch
{
    private static string Model => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "llama", "tiny");

    [Test]
    public void InfoDescribesTheArchitecture()
    {
        var (code, stdout, stderr) = CliRunner.Run("info", Model, "--prompt-length", "10");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("family       llama (RMSNorm, SwiGLU, RoPE θ=10000, separate lm_head)")
            .And.Contain("d_model      32 (4 heads × 8, grouped-query, 2 kv heads)").And.Contain("prompt P=10  320 trainable parameters"));
    }

    [Category("Slow")]
    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void TrainingLowersTheDevLossAndTheFileNamesItsModel(string device)
    {
        if (device == "cuda-emulated" && !SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        string data = In("train.jsonl"), dev = In("dev.jsonl"), output = In("p.safetensors"), untrained = In("untrained.safetensors");
        File.WriteAllLines(data, File.ReadLines(DemoModel.Data("copy.train.jsonl")).Take(64));
        File.WriteAllLines(dev, File.ReadLines(DemoModel.Data("copy.dev.jsonl")).Take(16));
        double Loss(string prompt)
        {
            var (c, o, e) = CliRunner.Run("eval", "--model", Model, "--prompt", prompt, "--data", dev, "--device", device, "--json");
            Assert.That(c, Is.EqualTo(0), e);
            return ParseJson(o).GetProperty("metrics").GetProperty("loss").GetDouble();
        }

        var (code, stdout, stderr) = CliRunner.Run("train", "--model", Model, "--data", data, "--prompt-length", "4",
            "--optimizer", "adamw", "--lr", "0.1", "--steps", "60", "--batch-size", "16", "--out", output, "--no-plot", "--device", device);
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        var trained = PromptFile.Load(output);
        Assert.That(trained.Metadata[PromptFile.FamilyKey], Is.EqualTo("llama"));
        Assert.That((trained.Length, trained.Width), Is.EqualTo((4, 32)));
        new PromptFile(TestModels.RandomPrompts<float>(4 * 32, seed: 1), 4, 32, trained.Metadata).Save(untrained);
        Assert.That(Loss(output), Is.LessThan(0.9 * Loss(untrained)), "the trained prompt lowers the dev loss below an untrained one's");
    }
}

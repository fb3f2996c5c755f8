using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt train` gives the same prompt on every device.</summary>
public sealed class DeviceParityTests
{
    [Category("Slow")]
    [TestCase("adamw")]
    [TestCase("adafactor")]
    public void TrainOnTheEmulatedGpuMatchesTheCpu(string optimizer)
    {
        if (!EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        string fixtures = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2");
        string scratch = Path.Combine(Path.GetTempPath(), "softprompt-devices-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch);
        try
        {
            var prompts = new Dictionary<string, float[]>();
            foreach (string device in new[] { "cpu", "cuda-emulated" })
            {
                string output = Path.Combine(scratch, device + ".safetensors");
                var (code, stdout, stderr) = CliRunner.Run("train", "--model", Path.Combine(fixtures, "tiny"), "--data", Path.Combine(fixtures, "sgd", "train.jsonl"),
                    "--prompt-length", "4", "--steps", "5", "--batch-size", "4", "--optimizer", optimizer, "--lr", "0.05", "--seed", "3",
                    "--clip-norm", "1", "--device", device, "--out", output);
                Assert.That(code, Is.EqualTo(0), stdout + stderr);
                Assert.That(stdout, Does.Contain($"device {device}"));
                prompts[device] = PromptFile.Load(output).Values;
            }
            double worst = 0, scale = 0;
            for (int i = 0; i < prompts["cpu"].Length; i++)
            {
                worst = Math.Max(worst, Math.Abs(prompts["cpu"][i] - prompts["cuda-emulated"][i]));
                scale = Math.Max(scale, Math.Abs(prompts["cpu"][i]));
            }
            Assert.That(worst / scale, Is.LessThan(1e-4), "max |cpu − cuda-emulated| / max |cpu| after 5 steps");
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }
}

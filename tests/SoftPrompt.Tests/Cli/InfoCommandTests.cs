using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

public sealed class InfoCommandTests
{
    private static string Model => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "tiny");
    private static string OtherModel => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "tiny-prefixed");

    [Test]
    public void DescribesAPromptFileAndWhetherItBelongsToTheModel()
    {
        string scratch = Path.Combine(Path.GetTempPath(), "softprompt-info-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch);
        try
        {
            string prompt = Path.Combine(scratch, "p.safetensors");
            var (code, _, stderr) = CliRunner.Run("train", "--model", Model, "--data", Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "sgd", "train.jsonl"),
                "--prompt-length", "3", "--steps", "1", "--out", prompt);
            Assert.That(code, Is.EqualTo(0), stderr);
            var (infoCode, stdout, _) = CliRunner.Run("info", Model, "--prompt", prompt);
            Assert.That(infoCode, Is.EqualTo(0));
            Assert.That(stdout, Does.Contain("3 vectors × 32 = 96 parameters").And.Contain("belongs      yes").And.Contain(PromptFile.FingerprintKey));
            var (_, other, _) = CliRunner.Run("info", OtherModel, "--prompt", prompt);
            Assert.That(other, Does.Contain("NO — trained for another model"));
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }
}

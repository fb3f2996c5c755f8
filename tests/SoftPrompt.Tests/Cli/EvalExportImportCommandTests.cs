using System.Text.Json;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

public sealed class EvalExportImportCommandTests : CliScratch
{
    private static string Reference(string task) => Tuning.DemoModel.Prompt(task);

    [Category("Slow")]
    [Test]
    public void EvalScoresTheDemosReferencePromptWithExactMatch()
    {
        var (code, stdout, stderr) = CliRunner.Run("eval", "--model", Demo, "--prompt", Reference("copy"), "--data", DemoData("copy.dev.jsonl"), "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        var json = ParseJson(stdout);
        Assert.That(json.GetProperty("task").GetString(), Is.EqualTo("generation"));
        Assert.That(json.GetProperty("rows").GetInt32(), Is.EqualTo(200));
        var metrics = json.GetProperty("metrics");
        Assert.That(metrics.GetProperty("exact_match").GetDouble(), Is.GreaterThanOrEqualTo(0.99), "tasks.json: the reference prompt scores 1.0 in PyTorch");
        Assert.That(metrics.GetProperty("token_accuracy").GetDouble(), Is.GreaterThanOrEqualTo(metrics.GetProperty("exact_match").GetDouble()));
        Assert.That(stderr, Does.Contain("exact match"));
    }

    [Test]
    public void EvalRefusesAPromptOfAnotherModel()
    {
        string gpt2 = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "tiny");
        var (code, _, stderr) = CliRunner.Run("eval", "--model", gpt2, "--prompt", Reference("copy"), "--data", DemoData("copy.dev.jsonl"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("64 wide").And.Contain("32"));
    }

    [Category("Slow")]
    [Test]
    public void ExportToPeftAndImportBackGivesTheSamePrompt()
    {
        string adapter = In("adapter");
        var (code, stdout, stderr) = CliRunner.Run("export", "--prompt", Reference("reverse"), "--format", "peft", "--out", adapter, "--model", Demo, "--base-model", "softprompt/demo");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("PeftModel.from_pretrained"));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json"))))
        {
            var root = config.RootElement;
            Assert.That(root.GetProperty("base_model_name_or_path").GetString(), Is.EqualTo("softprompt/demo"));
            Assert.That(root.GetProperty("num_layers").GetInt32(), Is.EqualTo(3));
            Assert.That(root.GetProperty("num_attention_heads").GetInt32(), Is.EqualTo(4));
            Assert.That(root.GetProperty("token_dim").GetInt32(), Is.EqualTo(64));
            Assert.That(root.GetProperty("num_virtual_tokens").GetInt32(), Is.EqualTo(4));
        }

        (code, stdout, stderr) = CliRunner.Run("import", "--peft", adapter, "--out", In("back.safetensors"), "--model", Demo);
        Assert.That(code, Is.EqualTo(0), stderr);
        var back = PromptFile.Load(In("back.safetensors"));
        Assert.That(back.Values, Is.EqualTo(PromptFile.Load(Reference("reverse")).Values));
        Assert.That(back.Metadata[PromptFile.FingerprintKey], Has.Length.EqualTo(16));

        (code, _, stderr) = CliRunner.Run("eval", "--model", Demo, "--prompt", In("back.safetensors"), "--data", DemoData("reverse.dev.jsonl"));
        Assert.That(code, Is.EqualTo(0), stderr);

        string gpt2 = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "tiny");
        (code, _, stderr) = CliRunner.Run("import", "--peft", adapter, "--out", In("wrong.safetensors"), "--model", gpt2);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("64 wide").And.Contain("another model"));
    }

    [Test]
    public void ExportOfAPromptThatDoesNotNameItsModelAsksForIt()
    {
        var (code, _, stderr) = CliRunner.Run("export", "--prompt", Reference("copy"), "--format", "peft", "--out", In("adapter"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("--model DIR"));
    }
}

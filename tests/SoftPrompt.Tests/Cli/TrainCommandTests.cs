using SoftPrompt.Checkpoints;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

public sealed class TrainCommandTests
{
    private string scratch = null!;
    private static string Fixtures => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2");
    private static string Model => Path.Combine(Fixtures, "tiny");
    private static string Sgd(string file) => Path.Combine(Fixtures, "sgd", file);

    [SetUp]
    public void SetUp() => Directory.CreateDirectory(scratch = Path.Combine(Path.GetTempPath(), "softprompt-cli-" + Guid.NewGuid().ToString("N")));

    [TearDown]
    public void TearDown() => Directory.Delete(scratch, recursive: true);

    private static float[] Expected(string file)
    {
        using var f = SafeTensorFile.Open(Sgd(file));
        return f.Read<float>(PromptFile.TensorName);
    }

    [TestCase("sgd", "1", "expected.safetensors")]
    [TestCase("adamw", "0.01", "adamw_expected.safetensors")]
    public void OneFullBatchStepEqualsPyTorch(string optimizer, string lr, string expectedFile)
    {
        string output = Path.Combine(scratch, "prompt.safetensors");
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", Model, "--data", Sgd("train.jsonl"), "--optimizer", optimizer, "--lr", lr,
            "--steps", "1", "--batch-size", "6", "--no-shuffle", "--init", Sgd("init.safetensors"), "--out", output, "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        var trained = PromptFile.Load(output);
        var expected = Expected(expectedFile);
        Assert.That(trained.Length, Is.EqualTo(5));
        double worst = trained.Values.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
        Assert.That(worst, Is.LessThan(2e-6), "max |trained − PyTorch| after one step");
        Assert.That(trained.Metadata[PromptFile.FingerprintKey], Has.Length.EqualTo(16));
        Assert.That(Directory.GetFiles(scratch, "*.tmp-*"), Is.Empty, "no temp file left behind");
        Assert.That(Directory.GetFiles(scratch).Select(Path.GetFileName), Is.EquivalentTo(new[] { "prompt.safetensors", "prompt.metrics.jsonl", "prompt.curves.png" }));
    }

    [TestCase("{\"input_ids\":[1,2],\"target_ids\":[97]}", "outside the model's vocabulary")]
    [TestCase("{\"input_ids\":[1,2],\"target_ids\":[]}", "target_ids is empty")]
    [TestCase("{\"input_ids\":[1,2],\"target_ids\":[3]", "not valid JSON")]
    public void BadRowsAreNamed(string row, string message)
    {
        string data = Path.Combine(scratch, "bad.jsonl");
        File.WriteAllLines(data, ["{\"input_ids\":[1],\"target_ids\":[2]}", row]);
        var (code, _, stderr) = CliRunner.Run("train", "--model", Model, "--data", data, "--steps", "1", "--out", Path.Combine(scratch, "p.safetensors"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("bad.jsonl, row 2").And.Contain(message));
    }

    [Test]
    public void RowsLongerThanTheModelAllowsAreRejected()
    {
        string data = Path.Combine(scratch, "long.jsonl");
        File.WriteAllText(data, "{\"input_ids\":[" + string.Join(",", Enumerable.Repeat(1, 60)) + "],\"target_ids\":[2]}\n");
        var (code, _, stderr) = CliRunner.Run("train", "--model", Model, "--data", data, "--prompt-length", "5", "--out", Path.Combine(scratch, "p.safetensors"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("row 1").And.Contain("n_positions"));
    }

    [Test]
    public void InitPromptOfAnotherWidthIsRejected()
    {
        string init = Path.Combine(scratch, "wide.safetensors");
        new PromptFile(new float[5 * 48], 5, 48, new Dictionary<string, string>()).Save(init);
        var (code, _, stderr) = CliRunner.Run("train", "--model", Model, "--data", Sgd("train.jsonl"), "--init", init, "--out", Path.Combine(scratch, "p.safetensors"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("48 wide").And.Contain("32"));
    }

    // Each of these ran and wrote a NaN or Inf prompt before (issue 14 item 2): now refused before training, flag named.
    [TestCase("--optimizer", "adafactor", "--decay-rate", "nan", "--decay-rate")]
    [TestCase("--optimizer", "adafactor", "--decay-rate", "0.5", "--decay-rate")]
    [TestCase("--optimizer", "adafactor", "--update-clip", "0", "--update-clip")]
    [TestCase("--optimizer", "adamw", "--clip-norm", "nan", "--clip-norm")]
    [TestCase("--optimizer", "adamw", "--weight-decay", "1e30", "--weight-decay")]
    [TestCase("--optimizer", "sgd", "--weight-decay", "infinity", "--weight-decay")]
    public void NonsenseOptimizerSettingsAreRefusedBeforeTraining(string optimizerFlag, string optimizer, string flag, string value, string named)
    {
        string output = Path.Combine(scratch, "p.safetensors");
        var (code, _, stderr) = CliRunner.Run("train", "--model", Model, "--data", Sgd("train.jsonl"), optimizerFlag, optimizer, flag, value, "--lr", "0.3",
            "--steps", "1", "--out", output);
        Assert.That(code, Is.EqualTo(1), stderr);
        Assert.That(stderr, Does.Contain(named).And.Not.Contain("OptimizerSettings"));
        Assert.That(File.Exists(output), Is.False);
    }

    [Test]
    public void InfoReportsSizesAndPromptCost()
    {
        var (code, stdout, _) = CliRunner.Run("info", Model, "--prompt-length", "10");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("layers       2").And.Contain("d_model      32").And.Contain("320 trainable parameters"));
    }
}

using SoftPrompt.Tuning;
using SoftPrompt.Tests.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14: an output flag that names one of the run's inputs (or another of its outputs) is refused before anything
/// is written, whether it names the file directly, through a symlink or through a hard link.
/// </summary>
public sealed class OutputCollisionCommandTests : CliScratch
{
    /// <summary>A private copy of the demo model and data: a regression here must not destroy the bundled files.</summary>
    private (string Model, string Data) CopyInputs()
    {
        string model = Directory.CreateDirectory(In("model")).FullName;
        foreach (string file in Directory.GetFiles(Demo)) File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        string data = In("copy.train.jsonl");
        File.WriteAllLines(data, File.ReadLines(DemoData("copy.train.jsonl")).Take(16));
        return (model, data);
    }

    private static string[] Train(string model, string data, params string[] more) =>
        ["train", "--model", model, "--data", data, "--prompt-length", "2", "--steps", "1", "--batch-size", "4", "--device", "cpu", "--progress", "off", .. more];

    private static void AssertRefused((int Code, string Output, string Error) run, string outFlag, string inFlag, string path)
    {
        Assert.That(run.Code, Is.EqualTo(1), run.Output + run.Error);
        Assert.That(run.Error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), run.Error);
        Assert.That(run.Error, Does.StartWith("error: ").And.Contain(outFlag).And.Contain(inFlag).And.Contain(path));
    }

    private static byte[] Bytes(string path) => File.ReadAllBytes(path);

    [TestCase("--out", "model.safetensors")]
    [TestCase("--metrics", "config.json")]
    [TestCase("--plot", "model.safetensors")]
    public void TrainOutputOverAModelFileIsRefused(string flag, string modelFile)
    {
        var (model, data) = CopyInputs();
        string target = Path.Combine(model, modelFile);
        byte[] before = Bytes(target);
        string[] args = flag == "--out" ? Train(model, data, "--out", target) : Train(model, data, "--out", In("p.safetensors"), flag, target);
        AssertRefused(CliRunner.Run(args), flag, "--model", target);
        Assert.That(Bytes(target), Is.EqualTo(before), "the model file is untouched");
        Assert.That(File.Exists(In("p.safetensors")), Is.False, "nothing was trained");
    }

    [TestCase("--out")]
    [TestCase("--metrics")]
    public void TrainOutputOverTheDataIsRefused(string flag)
    {
        var (model, data) = CopyInputs();
        byte[] before = Bytes(data);
        string[] args = flag == "--out" ? Train(model, data, "--out", data) : Train(model, data, "--out", In("p.safetensors"), flag, data);
        AssertRefused(CliRunner.Run(args), flag, "--data", data);
        Assert.That(Bytes(data), Is.EqualTo(before));
    }

    [Test]
    public void TrainOutputThroughASymlinkToTheWeightsIsRefused()
    {
        var (model, data) = CopyInputs();
        string link = In("innocent.safetensors");
        File.CreateSymbolicLink(link, Path.Combine(model, "model.safetensors"));
        byte[] before = Bytes(link);
        AssertRefused(CliRunner.Run(Train(model, data, "--out", link)), "--out", "--model", link);
        Assert.That(Bytes(link), Is.EqualTo(before));
    }

    [Test]
    public void TrainOutputThroughASymlinkedDirectoryIsRefusedBeforeTheFileExists()
    {
        var (model, data) = CopyInputs();
        Directory.CreateSymbolicLink(In("alias"), model);
        // --metrics names a file that does not exist yet, through a link: it resolves to the same place as --plot.
        string metrics = Path.Combine(In("alias"), "run.log");
        var run = CliRunner.Run(Train(model, data, "--out", In("p.safetensors"), "--metrics", metrics, "--plot", Path.Combine(model, "run.log")));
        AssertRefused(run, "--metrics", "--plot", metrics);
    }

    [Test]
    public void TrainOutputThroughAHardLinkToTheDataIsRefused()
    {
        var (model, data) = CopyInputs();
        string link = In("hard.jsonl");
        Assume.That(OperatingSystem.IsLinux(), "hard links are made with ln");
        using (var ln = System.Diagnostics.Process.Start("ln", [data, link])) ln.WaitForExit();
        byte[] before = Bytes(data);
        AssertRefused(CliRunner.Run(Train(model, data, "--out", In("p.safetensors"), "--metrics", link)), "--metrics", "--data", link);
        Assert.That(Bytes(data), Is.EqualTo(before));
    }

    [Test]
    public void TwoOutputsOfOneRunOnOneFileAreRefused()
    {
        var (model, data) = CopyInputs();
        string output = In("p.safetensors");
        AssertRefused(CliRunner.Run(Train(model, data, "--out", output, "--plot", output)), "--out", "--plot", output);
    }

    [Test]
    public void PredictOutOverItsDataIsRefused()
    {
        var (model, _) = CopyInputs();
        string data = In("rows.jsonl");
        File.WriteAllLines(data, File.ReadLines(DemoData("copy.dev.jsonl")).Take(4).Select(l => l.Insert(1, "\"task\":\"copy\",")));
        byte[] before = Bytes(data);
        var run = CliRunner.Run("predict", "--model", model, "--prompt", $"copy={DemoModel.Prompt("copy")}", "--data", data, "--out", data, "--device", "cpu");
        AssertRefused(run, "--out", "--data", data);
        Assert.That(Bytes(data), Is.EqualTo(before));
    }

    [Test]
    public void ImportOverThePromptItReadsIsRefused()
    {
        var (model, _) = CopyInputs();
        string adapter = In("adapter");
        Assert.That(CliRunner.Run("export", "--prompt", DemoModel.Prompt("copy"), "--out", adapter, "--model", Demo).ExitCode, Is.EqualTo(0));
        string weights = Path.Combine(adapter, "adapter_model.safetensors");
        byte[] before = Bytes(weights);
        AssertRefused(CliRunner.Run("import", "--peft", adapter, "--out", weights, "--model", model), "--out", "--peft", weights);
        Assert.That(Bytes(weights), Is.EqualTo(before));
    }

    [Test]
    public void ExportIntoTheDirectoryOfItsPromptIsRefused()
    {
        string adapter = In("adapter");
        Assert.That(CliRunner.Run("export", "--prompt", DemoModel.Prompt("copy"), "--out", adapter, "--model", Demo).ExitCode, Is.EqualTo(0));
        string weights = Path.Combine(adapter, "adapter_model.safetensors");
        // A prompt file kept in the adapter directory under the adapter's own weights name.
        File.Copy(DemoModel.Prompt("copy"), weights, overwrite: true);
        byte[] before = Bytes(weights);
        AssertRefused(CliRunner.Run("export", "--prompt", weights, "--out", adapter, "--model", Demo), "--out", "--prompt", weights);
        Assert.That(Bytes(weights), Is.EqualTo(before));
    }

    [Test]
    public void DistinctOutputsBesideTheInputsAreAccepted()
    {
        var (model, data) = CopyInputs();
        var run = CliRunner.Run(Train(model, data, "--out", Path.Combine(model, "prompt.safetensors"), "--no-plot"));
        Assert.That(run.ExitCode, Is.EqualTo(0), run.Output + run.Error);
        Assert.That(PromptFile.Load(Path.Combine(model, "prompt.safetensors")).Length, Is.EqualTo(2));
    }
}

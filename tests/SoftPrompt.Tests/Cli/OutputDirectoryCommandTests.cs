namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14: an output directory that is missing, not a directory, or not writable fails the run before it trains,
/// with the flag and the directory named, instead of after training when the prompt is lost.
/// </summary>
public sealed class OutputDirectoryCommandTests : CliScratch
{
    private string[] Train(params string[] more) =>
        ["train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "2", "--steps", "2", "--batch-size", "4",
            "--device", "cpu", "--progress", "off", "--metrics", In("run.metrics.jsonl"), .. more];

    /// <summary>A directory this process cannot create files in: read-only by mode, or (as root, whom modes do not stop) /proc's.</summary>
    private string ReadOnlyDirectory()
    {
        if (Environment.UserName != "root" && !OperatingSystem.IsWindows())
        {
            string directory = Directory.CreateDirectory(In("readonly")).FullName;
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            return directory;
        }
        Assume.That(OperatingSystem.IsLinux(), "needs /proc");
        return "/proc/self";
    }

    [TearDown]
    public void MakeWritable()
    {
        if (!OperatingSystem.IsWindows() && Directory.Exists(In("readonly"))) File.SetUnixFileMode(In("readonly"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private string Target(string kind) => kind switch
    {
        "missing" => In("missing"),
        "file" => In("a-file"),
        _ => ReadOnlyDirectory(),
    };

    private void AssertFailsBeforeTraining((int Code, string Output, string Error) run, string flag, string directory)
    {
        Assert.That(run.Code, Is.EqualTo(1), run.Output + run.Error);
        Assert.That(run.Error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), run.Error);
        Assert.That(run.Error, Does.StartWith("error: ").And.Contain(flag).And.Contain(directory));
        Assert.That(File.Exists(In("run.metrics.jsonl")), Is.False, "the run stopped before it trained");
    }

    [TestCase("missing")]
    [TestCase("file")]
    [TestCase("read-only")]
    public void OutIntoAnUnwritableDirectoryFailsBeforeTraining(string kind)
    {
        File.WriteAllText(In("a-file"), "");
        string directory = Target(kind);
        AssertFailsBeforeTraining(CliRunner.Run(Train("--out", Path.Combine(directory, "p.safetensors"))), "--out", directory);
    }

    [TestCase("missing")]
    [TestCase("read-only")]
    public void PlotIntoAnUnwritableDirectoryFailsBeforeTraining(string kind)
    {
        string directory = Target(kind);
        var run = CliRunner.Run(Train("--out", In("p.safetensors"), "--plot", Path.Combine(directory, "curves.png")));
        AssertFailsBeforeTraining(run, "--plot", directory);
        Assert.That(File.Exists(In("p.safetensors")), Is.False);
    }

    [Test]
    public void MetricsIntoAMissingDirectoryFailsBeforeTraining()
    {
        string[] args = [.. Train("--out", In("p.safetensors"))];
        args[Array.IndexOf(args, "--metrics") + 1] = In("logs/run.jsonl");
        var run = CliRunner.Run(args);
        Assert.That(run.ExitCode, Is.EqualTo(1));
        Assert.That(run.Error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), run.Error);
        Assert.That(run.Error, Does.Contain("--metrics").And.Contain(In("logs")));
    }

    [TestCase("file")]
    [TestCase("read-only")]
    public void CheckpointDirThatCannotBeCreatedFailsBeforeTraining(string kind)
    {
        File.WriteAllText(In("a-file"), "");
        string directory = Path.Combine(Target(kind), "checkpoints");
        var run = CliRunner.Run(Train("--out", In("p.safetensors"), "--checkpoint-dir", directory));
        AssertFailsBeforeTraining(run, "--checkpoint-dir", directory);
    }

    [Test]
    public void AMissingCheckpointDirIsCreatedAndNoProbeIsLeftBehind()
    {
        var run = CliRunner.Run(Train("--out", In("p.safetensors"), "--checkpoint-dir", In("a/b/ck"), "--no-plot"));
        Assert.That(run.ExitCode, Is.EqualTo(0), run.Output + run.Error);
        var checkpoints = Directory.GetFiles(In("a/b/ck")).Select(Path.GetFileName).ToList();
        Assert.That(checkpoints, Has.All.StartWith("checkpoint-"));
        Assert.That(checkpoints, Has.Member("checkpoint-00000002.safetensors"));
        Assert.That(Directory.GetFiles(Scratch).Select(Path.GetFileName), Is.EquivalentTo(new[] { "p.safetensors", "run.metrics.jsonl" }));
    }

    [Test]
    public void DemoOutDirThatCannotBeCreatedFailsBeforeTuning()
    {
        File.WriteAllText(In("a-file"), "");
        string directory = Path.Combine(In("a-file"), "prompts");
        var run = CliRunner.Run("demo", "--device", "cpu", "--tasks", "copy", "--steps", "2", "--out-dir", directory);
        Assert.That(run.ExitCode, Is.EqualTo(1), run.Output + run.Error);
        Assert.That(run.Error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), run.Error);
        Assert.That(run.Error, Does.StartWith("error: ").And.Contain("--out-dir").And.Contain(directory));
        Assert.That(run.Output, Is.Empty, "nothing was tuned");
    }
}

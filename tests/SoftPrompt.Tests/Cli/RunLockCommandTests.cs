namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14: two `train` runs on one --out (one metrics log) or one --checkpoint-dir (one --keep-last pruning) cannot
/// run together: the second is refused and told who holds it; a killed run's lock file blocks nobody.
/// </summary>
[NonParallelizable]
public sealed class RunLockCommandTests : CliScratch
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    private static string[] Train(string output, string checkpoints, string steps) =>
        ["train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "2", "--steps", steps, "--batch-size", "4",
            "--device", "cpu", "--progress", "plain", "--no-plot", "--out", output, "--checkpoint-dir", checkpoints];

    private static void AssertRefused((int Code, string Output, string Error) run, string flag, string target, int holder)
    {
        Assert.That(run.Code, Is.EqualTo(1), run.Output + run.Error);
        Assert.That(run.Error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), run.Error);
        Assert.That(run.Error, Does.StartWith("error: ").And.Contain(flag).And.Contain(target).And.Contain("in use by another run"));
        if (OperatingSystem.IsLinux()) Assert.That(run.Error, Does.Contain($"pid {holder} ").And.Contain("started "), "the holder is named");
    }

    [Test]
    public void TwoRunsNamingTheSameMetricsOrPlotFileCannotRunTogether()
    {
        Assume.That(!OperatingSystem.IsWindows(), "the child is stopped with kill");
        string[] First(string output, string checkpoints) =>
            [.. Train(output, checkpoints, "1000000").Where(a => a != "--no-plot"), "--metrics", In("shared.metrics.jsonl"), "--plot", In("shared.png")];
        using (var first = CliProcess.Start(First(In("a.safetensors"), In("ck-a"))))
        {
            first.WaitForLine(line => line.StartsWith("step ", StringComparison.Ordinal), Patience);
            AssertRefused(CliRunner.Run([.. Train(In("b.safetensors"), In("ck-b"), "1"), "--metrics", In("shared.metrics.jsonl")]), "--metrics", In("shared.metrics.jsonl"), first.Id);
            AssertRefused(CliRunner.Run([.. Train(In("c.safetensors"), In("ck-c"), "1").Where(a => a != "--no-plot"), "--plot", In("shared.png")]), "--plot", In("shared.png"), first.Id);
            first.Signal("KILL");
            first.WaitForExit(Patience);
        }
    }

    [Test]
    public void ASecondRunOnTheSameOutputOrCheckpointDirIsRefusedUntilTheFirstDies()
    {
        Assume.That(!OperatingSystem.IsWindows(), "the child is stopped with kill");
        string output = In("p.safetensors");
        using (var first = CliProcess.Start(Train(output, In("ck"), "1000000")))
        {
            first.WaitForLine(line => line.StartsWith("step ", StringComparison.Ordinal), Patience);

            AssertRefused(CliRunner.Run(Train(output, In("other-ck"), "1")), "--out", output, first.Id);
            AssertRefused(CliRunner.Run(Train(In("q.safetensors"), In("ck"), "1")), "--checkpoint-dir", In("ck"), first.Id);
            Assert.That(File.Exists(In("q.safetensors")), Is.False, "the refused run wrote nothing");

            first.Signal("KILL");
            first.WaitForExit(Patience);
        }
        Assert.That(File.Exists(In("p.lock")) && File.Exists(In("ck/softprompt.lock")), Is.True, "the killed run left its lock files");

        var next = CliRunner.Run(Train(output, In("ck"), "1"));
        Assert.That(next.ExitCode, Is.EqualTo(0), next.Output + next.Error);
        Assert.That(File.Exists(In("p.lock")) || File.Exists(In("ck/softprompt.lock")), Is.False, "a run removes its lock files as it ends");
    }
}

using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14: SIGTERM (how schedulers preempt a job) stops `train` the way Ctrl+C does: after the current step, with a
/// checkpoint and --out written, exit 128 + the signal.
/// </summary>
[NonParallelizable]
public sealed class StopSignalCommandTests : CliScratch
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [TestCase("TERM", 143)]
    [TestCase("INT", 130)]
    public void ASignalFinishesTheStepCheckpointsAndWritesTheOutputs(string signal, int exitCode)
    {
        Assume.That(!OperatingSystem.IsWindows(), "POSIX signals");
        string output = In("p.safetensors");
        using var run = CliProcess.Start("train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "2", "--steps", "1000000",
            "--batch-size", "4", "--device", "cpu", "--progress", "plain", "--out", output, "--checkpoint-dir", In("ck"));
        run.WaitForLine(line => line.StartsWith("step ", StringComparison.Ordinal), Patience);
        run.Signal(signal);
        Assert.That(run.WaitForExit(Patience), Is.EqualTo(exitCode), run.Output);

        Assert.That(run.Output, Does.Contain("interrupted: step "));
        var checkpoints = new CheckpointStore(In("ck")).List();
        Assert.That(checkpoints, Is.Not.Empty, "a checkpoint of the step reached");
        var prompt = PromptFile.Load(output);
        Assert.That(prompt.Length, Is.EqualTo(2));
        Assert.That(prompt.Metadata["step"], Is.EqualTo(checkpoints[^1].Step.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(MetricsLog.Read(In("p.metrics.jsonl")), Is.Not.Empty);
        Assert.That(File.Exists(In("p.curves.png")), Is.True);
        Assert.That(Directory.GetFiles(Scratch, "*.tmp-*"), Is.Empty);
    }
}

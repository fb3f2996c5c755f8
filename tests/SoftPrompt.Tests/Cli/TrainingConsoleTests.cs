using SoftPrompt.Cli.Output;
using SoftPrompt.Cli.Training;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>The training console reads the gradient norm (a wait for the GPU) only on steps that show or log it.</summary>
public sealed class TrainingConsoleTests
{
    private static (int Reads, List<int> LoggedSteps, string Text) Run(ProgressMode mode, int plainEvery, int steps)
    {
        string path = Path.Combine(Path.GetTempPath(), $"softprompt-console-{Guid.NewGuid():N}.metrics.jsonl");
        var engine = new ScriptedEngine();
        var text = new StringWriter();
        try
        {
            using (var log = MetricsLog.Create(path))
            {
                var console = new TrainingConsole(new ProgressLine(text, mode, plainEvery), log, _ => { });
                for (int step = 1; step <= steps; step++)
                    console.OnStep(new TrainProgress(step, steps, 1f / step, engine, 10, step) { LearningRate = 0.1f });
            }
            var logged = MetricsLog.Read(path).Where(r => r.Values.ContainsKey("grad_norm")).Select(r => r.Step).ToList();
            return (engine.GradientNormReads, logged, text.ToString());
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void WithoutAProgressLineTheNormIsReadOnlyOnLoggedSteps()
    {
        var (reads, logged, _) = Run(ProgressMode.Off, plainEvery: 1, steps: 25);
        Assert.That(logged, Is.EqualTo(new[] { 1, 10, 20, 25 }));
        Assert.That(reads, Is.EqualTo(4), "one device read per logged step, none on the 21 others");
    }

    [Test]
    public void PlainLinesShowTheNormTheyReadAndLogIt()
    {
        var (reads, logged, text) = Run(ProgressMode.Plain, plainEvery: 5, steps: 25);
        Assert.That(logged, Is.EqualTo(new[] { 1, 5, 10, 15, 20, 25 }));
        Assert.That(reads, Is.EqualTo(6));
        Assert.That(text.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(6).And.All.Contains("|g| 5.0e-01"));
    }
}

using System.Diagnostics;
using SoftPrompt.Tests.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14: outputs are written as a new file renamed over the old one (so a failed write never costs the previous
/// file), and temp files a killed run left beside a target are removed by the next run that writes it.
/// </summary>
public sealed class AtomicOutputCommandTests : CliScratch
{
    [Test]
    public void PredictReplacesItsOutputInsteadOfRewritingItInPlace()
    {
        string data = In("rows.jsonl");
        File.WriteAllLines(data, File.ReadLines(DemoData("copy.dev.jsonl")).Take(4).Select(l => l.Insert(1, "\"task\":\"copy\",")));
        string output = In("predictions.jsonl");
        File.WriteAllText(output, "previous predictions\n");
        // A second name for the old file: writing in place would change what it shows, a rename leaves it whole.
        string previous = In("previous.jsonl");
        Assume.That(OperatingSystem.IsLinux(), "hard links are made with ln");
        using (var ln = Process.Start("ln", [output, previous])) ln.WaitForExit();

        var run = CliRunner.Run("predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}", "--data", data, "--out", output, "--device", "cpu");
        Assert.That(run.ExitCode, Is.EqualTo(0), run.Output + run.Error);
        Assert.That(File.ReadAllLines(output), Has.Length.EqualTo(4));
        Assert.That(File.ReadAllText(previous), Is.EqualTo("previous predictions\n"));
        Assert.That(Directory.GetFiles(Scratch, "*.tmp-*"), Is.Empty);
    }

    [Test]
    public void StaleTempFilesOfTheTargetsAreRemovedAndNothingElse()
    {
        var beforeThisProcess = Process.GetCurrentProcess().StartTime.ToUniversalTime().AddMinutes(-1);
        string Temp(string name, DateTime written)
        {
            string path = In(name);
            File.WriteAllText(path, "left by a killed run");
            File.SetLastWriteTimeUtc(path, written);
            return path;
        }
        string[] stale = [Temp("p.safetensors.tmp-0123456789ab", beforeThisProcess), Temp("p.curves.png.tmp-a1b2c3d4e5f6", beforeThisProcess)];
        string[] kept =
        [
            Temp("p.safetensors.tmp-ffffffffffff", DateTime.UtcNow.AddMinutes(1)), // newer than this process: a live writer's
            Temp("other.safetensors.tmp-0123456789ab", beforeThisProcess), // another target's
            Temp("p.safetensors.tmp-notours", beforeThisProcess), // not our naming
            Temp("p.curves.png.tmp-plot.png.bak", beforeThisProcess),
        ];

        var run = CliRunner.Run("train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "2", "--steps", "2", "--batch-size", "4",
            "--device", "cpu", "--progress", "off", "--out", In("p.safetensors"));
        Assert.That(run.ExitCode, Is.EqualTo(0), run.Output + run.Error);
        Assert.That(stale.Where(File.Exists), Is.Empty, "stale temp files of --out and --plot");
        Assert.That(kept.Where(File.Exists), Is.EquivalentTo(kept));
        Assert.That(File.Exists(In("p.curves.png")), Is.True);
    }
}

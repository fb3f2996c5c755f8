using System.Text.Json;
using SoftPrompt.Tests.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14's hostile run, scripted: each command line a hostile but realistic user typed ends with exit code 1 and one
/// line naming what to change — no stack trace, no .NET parameter or type names, no help dump, nothing half done.
/// Every case here printed a stack trace, a help text, "Infinity ms/step", a negative parameter count or exited 0 before.
/// </summary>
public sealed class HostileCliTests : CliScratch
{
    private static readonly string[] Leaks = ["   at ", "(Parameter '", "Actual value was", "System.", "Exception:", "Description:", "Usage:"];

    /// <summary>Placeholders: DEMO (the demo model), DATA (a small pre-tokenized data file), OUT (a fresh scratch path).</summary>
    [TestCase("bench --shape gpt2-small --steps 0 --device cpu", "--steps must be positive")]
    [TestCase("bench --shape gpt2-small --steps -1 --device cpu", "--steps must be positive")]
    [TestCase("bench --shape gpt2-small --warmup -4 --device cpu", "--warmup must be zero or more")]
    [TestCase("bench --shape gpt2-small --targets -4 --device cpu", "--targets must be positive")]
    [TestCase("bench --shape gpt2-small --targets 40 --seq-len 8 --device cpu", "--targets 40 exceeds --seq-len 8")]
    [TestCase("bench --shape gpt2-small --prompt-length -2 --device cpu", "--prompt-length must be zero or more")]
    [TestCase("bench --shape gpt2-small --batch-size 256 --seq-len 900 --device cpu --steps 1", "GiB of activations on the CPU")]
    [TestCase("info DEMO --prompt-length -5", "--prompt-length must be zero or more")]
    [TestCase("neighbors --model DEMO --prompt DEMO/../prompts/copy.safetensors --k 0", "--k must be positive")]
    [TestCase("demo --tasks copy,foo --steps 1 --device cpu", "unknown task foo; choose from copy, reverse, sort, majority")]
    [TestCase("demo --tasks foo --device cpu", "unknown task foo")]
    [TestCase("train --model DEMO --data DATA --out OUT --no-plot --plot OUT.png", "--no-plot and --plot contradict")]
    [TestCase("train --model DEMO --data DATA --out OUT --length-buckets --no-shuffle", "--length-buckets shuffles")]
    [TestCase("train --model DEMO --data DATA --out OUT --checkpoint-every 1", "--checkpoint-every needs --checkpoint-dir")]
    [TestCase("train --model DEMO --data DATA --out OUT --keep-last 2", "--keep-last needs --checkpoint-dir")]
    [TestCase("train --model DEMO --data DATA --out OUT --checkpoint-dir OUT.ck --keep-last -1", "--keep-last must be zero or more")]
    [TestCase("train --model DEMO --data DATA --out OUT --bogus-flag", "Unrecognized command or argument '--bogus-flag'")]
    [TestCase("train --model DEMO --data DATA --out OUT --steps 1 --prompt-length 4 --batch-size 2147483647", "A batch of 2147483647 rows × 22 positions needs")]
    [TestCase("train --model DEMO --data DATA --out OUT --prompt-length 4 --optimizer sgd --lr 3e38 --steps 3 --device cpu", "optimizer step 1 wrote")]
    [TestCase("train --model DEMO --data DATA --out OUT --prompt-length 4 --optimizer sgd --lr 3e38 --steps 3 --device cuda-emulated", "optimizer step 1 wrote")]
    [TestCase("train --model DEMO --data DATA --out OUT --lr abc", "Cannot parse argument 'abc' for option '--lr' as a number")]
    [TestCase("train --model DEMO --data DATA --out OUT --steps 1.5", "as a whole number")]
    public void EndsWithOneLineNamingTheFix(string commandLine, string expected)
    {
        var (code, stdout, stderr) = CliRunner.Run(Expand(commandLine));
        Assert.That(code, Is.EqualTo(1), stdout + stderr);
        string error = stderr.Trim();
        Assert.That(error, Does.StartWith("error: ").And.Contain(expected), stdout + stderr);
        Assert.That(error.Split('\n'), Has.Length.EqualTo(1), "one line");
        foreach (string leak in Leaks) Assert.That(error, Does.Not.Contain(leak), $"'{leak}' is for .NET programmers");
        // A run stopped by divergence keeps the metrics of the steps it made; nothing else is written.
        Assert.That(Directory.GetFiles(Scratch).Where(f => !f.EndsWith(".metrics.jsonl", StringComparison.Ordinal)), Is.Empty, "nothing written by a refused run");
    }

    [TestCase("eval --model DEMO --prompt DEMO/../prompts/copy.safetensors --data DATA --labels a,b", "pre-tokenized (input_ids/target_ids), so --input-column")]
    [TestCase("train --model DEMO --data TRUNCATED --out OUT --prompt-length 4 --steps 1", "truncated.jsonl, row 1: not valid JSON")]
    public void DataMistakesGetTheLoadersOwnMessage(string commandLine, string expected)
    {
        string line = File.ReadLines(DemoData("copy.train.jsonl")).First();
        File.WriteAllLines(In("truncated.jsonl"), [line[..(line.Length / 2)], .. File.ReadLines(DemoData("copy.train.jsonl")).Skip(1).Take(20)]);
        var (code, stdout, stderr) = CliRunner.Run([.. Expand(commandLine).Select(a => a.Replace("TRUNCATED", In("truncated.jsonl"), StringComparison.Ordinal))]);
        Assert.That(code, Is.EqualTo(1), stdout + stderr);
        Assert.That(stderr.Trim(), Does.StartWith("error: ").And.Contain(expected));
        Assert.That(stderr, Does.Not.Contain("say which columns").And.Not.Contain("give exactly one of"), "not the text-table hint");
    }

    [Test]
    public void UsageLinesNameTheCommandUsersType()
    {
        var (code, stdout, _) = CliRunner.Run("train", "--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("softprompt train [options]").And.Not.Contain("SoftPrompt.Cli"));
    }

    [Test]
    public void AJsonRunGetsItsErrorAsJsonNotAHelpText()
    {
        var (code, stdout, stderr) = CliRunner.Run(Expand("train --model DEMO --data DATA --out OUT --json --bogus-flag"));
        Assert.That(code, Is.EqualTo(1));
        var error = ParseJson(stdout).GetProperty("error").GetString();
        Assert.That(error, Does.Contain("'--bogus-flag'").And.Contain("`softprompt train --help`"), "quotes stay readable");
        Assert.That(stderr, Is.Empty);
    }

    private string[] Expand(string commandLine) =>
        [.. commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => a
            .Replace("DEMO", Demo, StringComparison.Ordinal)
            .Replace("DATA", DemoData("copy.train.jsonl"), StringComparison.Ordinal)
            .Replace("OUT", In("out.safetensors"), StringComparison.Ordinal))];
}

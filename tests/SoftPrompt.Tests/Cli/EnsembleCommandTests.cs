using System.Runtime.InteropServices;
using System.Text.Json;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>`ensemble` (K prompts scored together) and `train --ensemble K` end to end on the demo model.</summary>
public sealed class EnsembleCommandTests : CliScratch
{
    private static readonly string[] Tasks = ["copy", "reverse", "sort", "majority"];

    private string FirstRows(string file, int rows)
    {
        string path = In(file);
        File.WriteAllLines(path, File.ReadLines(DemoData(file)).Take(rows));
        return path;
    }

    private static double EvalAlone(string prompt, string data, string metric, params string[] columns)
    {
        var (code, stdout, stderr) = CliRunner.Run(["eval", "--model", Demo, "--prompt", prompt, "--data", data, "--device", "cpu", "--json", .. columns]);
        Assert.That(code, Is.EqualTo(0), stderr);
        return ParseJson(stdout).GetProperty("metrics").GetProperty(metric).GetDouble();
    }

    [Category("Slow")]
    [Test]
    public void TheDemosFourPromptsOnCopyRowsScoreAsEachAloneAndCombine()
    {
        string data = FirstRows("copy.dev.jsonl", 40);
        string[] prompts = [.. Tasks.Select(DemoModel.Prompt)];
        var (code, stdout, stderr) = CliRunner.Run(["ensemble", "--model", Demo, "--prompts", .. prompts, "--data", data, "--device", "cpu", "--json"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var json = ParseJson(stdout);
        Assert.That(json.GetProperty("task").GetString(), Is.EqualTo("generation"));
        Assert.That(json.GetProperty("rows").GetInt32(), Is.EqualTo(40));
        var each = json.GetProperty("prompts").EnumerateArray().ToList();
        Assert.That(each, Has.Count.EqualTo(4));
        for (int k = 0; k < 4; k++)
            Assert.That(each[k].GetProperty("exact_match").GetDouble(), Is.EqualTo(EvalAlone(prompts[k], data, "exact_match")), $"{Tasks[k]} prompt alone");
        Assert.That(json.GetProperty("best_prompt").GetProperty("index").GetInt32(), Is.EqualTo(0));
        Assert.That(json.GetProperty("best_prompt").GetProperty("exact_match").GetDouble(), Is.EqualTo(1.0));
        Assert.That(json.GetProperty("majority_vote").GetProperty("exact_match").GetDouble(), Is.InRange(0.0, 1.0));
        Assert.That(json.GetProperty("mean_probability").GetProperty("exact_match").GetDouble(), Is.InRange(0.0, 1.0));
        Assert.That(json.GetProperty("tie_rule").GetString(), Does.Contain("highest probability summed"));
        Assert.That(stderr, Does.Contain("majority vote").And.Contain("best single prompt (0)"), "the table goes to stderr under --json");
    }

    [Category("Slow")]
    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void MembersOfDifferentLengthsScoreAsEachAlone(string device)
    {
        if (device == "cuda-emulated" && !SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        string data = FirstRows("copy.dev.jsonl", 16);
        string longer = In("p9.safetensors");
        new PromptFile(TestModels.RandomPrompts<float>(9 * 64, seed: 2), 9, 64, PromptFile.Load(DemoModel.Prompt("copy")).Metadata).Save(longer);
        string[] prompts = [DemoModel.Prompt("reverse"), longer, DemoModel.Prompt("copy")];
        var (code, stdout, stderr) = CliRunner.Run(["ensemble", "--model", Demo, "--prompts", .. prompts, "--data", data, "--device", device, "--json"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stderr, Does.Contain("(P=4/9/4)"));
        var each = ParseJson(stdout).GetProperty("prompts").EnumerateArray().Select(p => p.GetProperty("exact_match").GetDouble()).ToList();
        for (int k = 0; k < 3; k++) Assert.That(each[k], Is.EqualTo(EvalAlone(prompts[k], data, "exact_match")), $"member {k} alone");
        Assert.That(each[2], Is.EqualTo(1.0), "the copy prompt, last behind a longer one, still copies");
    }

    [Test]
    public void OnT5TheEnsembleDecodesEveryPromptInOnePass()
    {
        string t5 = Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo", "t5");
        string data = FirstRows("reverse.dev.jsonl", 12);
        string[] prompts = [.. new[] { "reverse", "copy", "reverse" }.Select(t => Path.Combine(t5, "prompts", t + ".safetensors"))];
        var (code, stdout, stderr) = CliRunner.Run(["ensemble", "--model", Path.Combine(t5, "model"), "--prompts", .. prompts, "--data", data, "--device", "cpu", "--json"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var json = ParseJson(stdout);
        var each = json.GetProperty("prompts").EnumerateArray().Select(p => p.GetProperty("exact_match").GetDouble()).ToList();
        Assert.That(each[0], Is.EqualTo(1.0));
        Assert.That(each[1], Is.LessThan(0.5), "the copy prompt does not reverse");
        Assert.That(json.GetProperty("majority_vote").GetProperty("exact_match").GetDouble(), Is.EqualTo(1.0), "two reverse prompts out-vote one copy prompt");
    }

    [Test]
    public void RankClassificationPerPromptAccuracyEqualsEval()
    {
        string dev = MajorityCsv("dev", "3", "7");
        string[] columns = ["--template", "{symbols} <sep>", "--target-column", "majority", "--labels", "3=3,7=7"];
        string[] prompts = [DemoModel.Prompt("majority"), DemoModel.Prompt("sort"), DemoModel.Prompt("majority")];
        var (code, stdout, stderr) = CliRunner.Run(["ensemble", "--model", Demo, "--prompts", .. prompts, "--data", dev, .. columns, "--device", "cpu"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("rank classification over 2 labels").And.Contain("macro-F1").And.Contain("mean probability"));

        (code, stdout, stderr) = CliRunner.Run(["ensemble", "--model", Demo, "--prompts", .. prompts, "--data", dev, .. columns, "--device", "cpu", "--json"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var json = ParseJson(stdout);
        double majority = EvalAlone(prompts[0], dev, "accuracy", columns), sort = EvalAlone(prompts[1], dev, "accuracy", columns);
        var each = json.GetProperty("prompts").EnumerateArray().ToList();
        Assert.That(each.Select(p => p.GetProperty("accuracy").GetDouble()), Is.EqualTo(new[] { majority, sort, majority }));
        Assert.That(json.GetProperty("majority_vote").GetProperty("accuracy").GetDouble(), Is.EqualTo(majority), "two copies of the majority prompt outvote the sort prompt");
        Assert.That(json.GetProperty("majority_vote").TryGetProperty("macro_f1", out _), Is.True);
    }

    [Test]
    public void TrainingAnEnsembleEqualsSeparateRunsWithTheNextSeeds()
    {
        string[] Args(string output, params string[] extra) =>
        [
            "train", "--model", Demo, "--data", DemoData("reverse.train.jsonl"), "--prompt-length", "4", "--optimizer", "sgd", "--lr", "0.05",
            "--steps", "3", "--batch-size", "8", "--no-shuffle", "--out", output, "--no-plot", "--device", "cpu", .. extra,
        ];
        var (code, stdout, stderr) = CliRunner.Run(Args(In("ens.safetensors"), "--ensemble", "2", "--seed", "5"));
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("an ensemble of 2 P=4 prompts (random-uniform, seeds 5..6)").And.Contain("ens.k{0..1}.safetensors"));
        Assert.That(Directory.GetFiles(Scratch).Select(Path.GetFileName), Is.SupersetOf(new[] { "ens.k0.safetensors", "ens.k1.safetensors", "ens.metrics.jsonl" }));
        for (int k = 0; k < 2; k++)
        {
            (code, _, stderr) = CliRunner.Run(Args(In($"s{k}.safetensors"), "--seed", $"{5 + k}"));
            Assert.That(code, Is.EqualTo(0), stderr);
            var member = PromptFile.Load(In($"ens.k{k}.safetensors"));
            Assert.That(member.Values, Is.EqualTo(PromptFile.Load(In($"s{k}.safetensors")).Values).Within(2e-5f), $"prompt {k} = the run with --seed {5 + k}");
            Assert.That(member.Metadata["ensemble_index"], Is.EqualTo($"{k}"));
            Assert.That(member.Metadata["ensemble_size"], Is.EqualTo("2"));
            Assert.That(member.Metadata["init_seed"], Is.EqualTo($"{5 + k}"));
        }
    }

    [Category("Slow")]
    [Test]
    public void WithDevDataTheRunEndsWithTheEnsemblesDevScore()
    {
        string dev = FirstRows("reverse.dev.jsonl", 30);
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", Demo, "--data", DemoData("reverse.train.jsonl"), "--dev", dev, "--prompt-length", "4",
            "--lr", "0.1", "--steps", "12", "--eval-every", "6", "--batch-size", "16", "--ensemble", "3", "--out", In("rev.safetensors"), "--no-plot",
            "--device", "cpu", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        var json = ParseJson(stdout);
        Assert.That(json.GetProperty("out").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { 0, 1, 2 }.Select(k => In($"rev.k{k}.safetensors"))));
        Assert.That(json.GetProperty("last").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { 0, 1, 2 }.Select(k => In($"rev.k{k}.last.safetensors"))));
        var ensemble = json.GetProperty("ensemble");
        Assert.That(ensemble.GetProperty("size").GetInt32(), Is.EqualTo(3));
        var devScore = ensemble.GetProperty("dev");
        Assert.That(devScore.GetProperty("prompts").GetArrayLength(), Is.EqualTo(3));
        double vote = devScore.GetProperty("majority_vote").GetProperty("exact_match").GetDouble();
        Assert.That(json.GetProperty("best").GetProperty("metrics").GetProperty("exact_match").GetDouble(), Is.EqualTo(vote),
            "the best step was chosen by the majority vote the report shows");
        Assert.That(json.GetProperty("best").GetProperty("metrics").TryGetProperty("prompt2_exact_match", out _), Is.True);
        Assert.That(stderr, Does.Contain("ensemble of 3 on").And.Contain("majority vote").And.Contain("mean probability"));
        for (int k = 0; k < 3; k++)
        {
            var member = PromptFile.Load(In($"rev.k{k}.safetensors"));
            Assert.That(member.Metadata["selected"], Is.EqualTo("best-dev"));
            double alone = EvalAlone(In($"rev.k{k}.safetensors"), dev, "exact_match");
            Assert.That(devScore.GetProperty("prompts")[k].GetProperty("exact_match").GetDouble(), Is.EqualTo(alone), $"prompt {k} alone");
        }
    }

    [Test]
    public void ResumingAnEnsembleEndsWithTheSamePromptBytesAsOneRun()
    {
        string[] Args(string output, string steps, string checkpoints, string ensemble = "2") =>
        [
            "train", "--model", Demo, "--data", DemoData("sort.train.jsonl"), "--prompt-length", "4", "--optimizer", "adafactor", "--lr", "0.3",
            "--batch-size", "8", "--ensemble", ensemble, "--steps", steps, "--out", output, "--checkpoint-dir", checkpoints, "--no-plot", "--device", "cpu",
        ];
        Assert.That(CliRunner.Run(Args(In("whole.safetensors"), "4", In("whole"))).ExitCode, Is.EqualTo(0));
        Assert.That(CliRunner.Run(Args(In("split.safetensors"), "2", In("split"))).ExitCode, Is.EqualTo(0));
        var (code, stdout, stderr) = CliRunner.Run([.. Args(In("split.safetensors"), "4", In("split")), "--resume"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("at step 2"));
        for (int k = 0; k < 2; k++)
        {
            var whole = PromptFile.Load(In($"whole.k{k}.safetensors")).Values;
            var split = PromptFile.Load(In($"split.k{k}.safetensors")).Values;
            Assert.That(MemoryMarshal.AsBytes(split.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(whole.AsSpan())), $"prompt {k} bit-identical");
        }
        (code, _, stderr) = CliRunner.Run([.. Args(In("other.safetensors"), "4", In("split"), ensemble: "3"), "--resume"]);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("ensemble was 2, this run has 3"));
    }

    [TestCase("--init", "text:1 2 3", "start identical")]
    public void InitialisationsThatWouldCloneThePromptsAreRefused(string flag, string value, string message)
    {
        var (code, _, stderr) = CliRunner.Run("train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "4", "--steps", "1",
            "--ensemble", "2", flag, value, "--out", In("p.safetensors"), "--no-plot", "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain(message));
    }
}

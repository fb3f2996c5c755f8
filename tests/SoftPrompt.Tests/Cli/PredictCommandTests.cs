using System.Text.Json;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>`predict`: rows of several tasks in one file, each answered with its task's prompt in shared batches.</summary>
public sealed class PredictCommandTests : CliScratch
{
    private static readonly Dictionary<int, string> Symbols =
        JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(DemoModel.Directory, "vocab.json")))!.ToDictionary(p => p.Value, p => p.Key);

    private static List<JsonElement> Lines(string path) => [.. File.ReadLines(path).Select(l => JsonDocument.Parse(l).RootElement.Clone())];

    private static int[] Ids(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];

    [Test]
    public void EachRowIsAnsweredWithItsTasksPrompt()
    {
        string data = MixedCopyReverse(12);
        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}",
            "--prompt", $"reverse={DemoModel.Prompt("reverse")}", "--data", data, "--out", In("pred.jsonl"), "--batch-size", "7", "--device", "cpu", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);

        var inputs = File.ReadLines(data).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        var lines = Lines(In("pred.jsonl"));
        Assert.That(lines, Has.Count.EqualTo(24));
        for (int i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            string task = inputs[i].GetProperty("task").GetString()!;
            int[] symbols = Ids(inputs[i].GetProperty("input_ids"))[..^1];
            int[] expected = [.. (task == "copy" ? symbols : symbols.Reverse()), 22];
            Assert.That(line.GetProperty("row").GetInt32(), Is.EqualTo(i + 1));
            Assert.That(line.GetProperty("task").GetString(), Is.EqualTo(task));
            Assert.That(Ids(line.GetProperty("prediction")), Is.EqualTo(expected), $"row {i + 1}: the {task} of its input");
            Assert.That(line.GetProperty("correct").GetBoolean(), Is.True);
            Assert.That(line.GetProperty("score").GetDouble(), Is.LessThan(0).And.GreaterThan(-1));
        }
        var summary = ParseJson(stdout).GetProperty("tasks");
        Assert.That(summary.EnumerateArray().Select(t => (t.GetProperty("task").GetString(), t.GetProperty("rows").GetInt32(), t.GetProperty("accuracy").GetDouble())),
            Is.EqualTo(new[] { ("copy", 12, 1.0), ("reverse", 12, 1.0) }));
    }

    [Test]
    public void OnT5TheRowsAreDecodedWithTheirTasksPrompt()
    {
        string t5 = Path.Combine(TestContext.CurrentContext.TestDirectory, "Demo", "t5");
        string data = MixedCopyReverse(6);
        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", Path.Combine(t5, "model"),
            "--prompt", $"copy={Path.Combine(t5, "prompts", "copy.safetensors")}", "--prompt", $"reverse={Path.Combine(t5, "prompts", "reverse.safetensors")}",
            "--data", data, "--out", In("pred-t5.jsonl"), "--batch-size", "5", "--device", "cpu", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        var summary = ParseJson(stdout).GetProperty("tasks");
        Assert.That(summary.EnumerateArray().Select(t => (t.GetProperty("task").GetString(), t.GetProperty("rows").GetInt32(), t.GetProperty("accuracy").GetDouble())),
            Is.EqualTo(new[] { ("copy", 6, 1.0), ("reverse", 6, 1.0) }));
    }

    [Test]
    public void SampledPredictionsRepeatWithTheSeedWhateverTheBatchSize()
    {
        string data = MixedCopyReverse(6);
        string[] Args(string output, string batch, string seed) => ["predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}",
            "--prompt", $"reverse={DemoModel.Prompt("reverse")}", "--data", data, "--out", In(output), "--device", "cpu", "--batch-size", batch,
            "--temperature", "4", "--top-k", "10", "--seed", seed];
        foreach (var (output, batch, seed) in new[] { ("a.jsonl", "12", "1"), ("b.jsonl", "5", "1"), ("c.jsonl", "12", "2") })
        {
            var (code, _, stderr) = CliRunner.Run(Args(output, batch, seed));
            Assert.That(code, Is.EqualTo(0), stderr);
        }
        // The answers, not the scores: a score's last digits follow the batch's GEMM blocking.
        string[] Answers(string file) => [.. File.ReadLines(In(file)).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("prediction").GetRawText())];
        Assert.That(Answers("b.jsonl"), Is.EqualTo(Answers("a.jsonl")), "same seed, other batch size");
        Assert.That(Answers("c.jsonl"), Is.Not.EqualTo(Answers("a.jsonl")), "another seed");
        var (bad, _, error) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}", "--data", data, "--out", In("d.jsonl"),
            "--device", "cpu", "--temperature", "0");
        Assert.That(bad, Is.Not.Zero);
        Assert.That(error, Does.Contain("--temperature"));
    }

    [Test]
    public void SwappingThePromptsSwapsTheAnswers()
    {
        string data = MixedCopyReverse(6);
        var (code, _, stderr) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("reverse")}",
            "--prompt", $"reverse={DemoModel.Prompt("copy")}", "--data", data, "--out", In("pred.jsonl"), "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        var inputs = File.ReadLines(data).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        var lines = Lines(In("pred.jsonl"));
        for (int i = 0; i < lines.Count; i++)
        {
            int[] symbols = Ids(inputs[i].GetProperty("input_ids"))[..^1];
            bool copyRow = inputs[i].GetProperty("task").GetString() == "copy";
            int[] expected = [.. (copyRow ? symbols.Reverse() : symbols), 22];
            Assert.That(Ids(lines[i].GetProperty("prediction")), Is.EqualTo(expected), $"row {i + 1}: the prompt its task names, not the row's real task");
        }
    }

    [Test]
    public void TextRowsMixRankClassificationAndGeneration()
    {
        // The majority task as a classification over values "three" and "seven" (label texts 3 and 7), the copy task
        // generated as text; one CSV, --labels for one task.
        var lines = new List<string> { "task,symbols,answer" };
        string Text(JsonElement ids) => string.Join(' ', ids.EnumerateArray().Select(e => Symbols[e.GetInt32()]).SkipLast(1));
        foreach (string line in File.ReadLines(DemoData("majority.dev.jsonl")).Take(60))
        {
            var row = JsonDocument.Parse(line).RootElement;
            string answer = Text(row.GetProperty("target_ids"));
            if (answer is "3" or "7") lines.Add($"majority,{Text(row.GetProperty("input_ids"))},{(answer == "3" ? "three" : "seven")}");
        }
        int majorityRows = lines.Count - 1;
        foreach (string line in File.ReadLines(DemoData("copy.dev.jsonl")).Take(8))
        {
            var row = JsonDocument.Parse(line).RootElement;
            lines.Add($"copy,{Text(row.GetProperty("input_ids"))},{Text(row.GetProperty("target_ids"))}");
        }
        File.WriteAllLines(In("tasks.csv"), lines);

        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"majority={DemoModel.Prompt("majority")}",
            "--prompt", $"copy={DemoModel.Prompt("copy")}", "--data", In("tasks.csv"), "--template", "{symbols} <sep>", "--target-column", "answer",
            "--labels", "majority=three=3,seven=7", "--out", In("pred.jsonl"), "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("majority: ").And.Contain("rank classification").And.Contain("copy: 8 rows, generation"));
        var predictions = Lines(In("pred.jsonl"));
        Assert.That(predictions, Has.Count.EqualTo(majorityRows + 8));
        foreach (var p in predictions.Take(majorityRows))
        {
            Assert.That(p.GetProperty("task").GetString(), Is.EqualTo("majority"));
            string label = p.GetProperty("label").GetString()!;
            Assert.That(p.GetProperty("prediction").GetString(), Is.EqualTo(label == "three" ? "3" : "7"), "the label text of the chosen value");
            Assert.That(p.GetProperty("probability").GetDouble(), Is.InRange(0.5, 1.0));
            Assert.That(p.GetProperty("correct").GetBoolean(), Is.EqualTo(label == p.GetProperty("gold").GetString()));
        }
        Assert.That(predictions.Take(majorityRows).Count(p => p.GetProperty("correct").GetBoolean()), Is.GreaterThanOrEqualTo(majorityRows - 1));
        foreach (var p in predictions.Skip(majorityRows))
        {
            Assert.That(p.GetProperty("task").GetString(), Is.EqualTo("copy"));
            Assert.That(p.GetProperty("prediction").GetString(), Is.EqualTo(p.GetProperty("gold").GetString()), "decoded text without <eos>");
            Assert.That(p.GetProperty("correct").GetBoolean(), Is.True);
        }
    }

    /// <summary>
    /// --stop on copy rows generated as text: each answer is the gold copy cut where the stop string (two symbols of the
    /// first row's answer, so two tokens) first appears. Every input holds the string too and does not stop its row.
    /// </summary>
    [Test]
    public void AStopStringEndsTheAnswerAndIsCutFromIt()
    {
        var lines = new List<string> { "task,symbols,answer" };
        string Text(JsonElement ids) => string.Join(' ', ids.EnumerateArray().Select(e => Symbols[e.GetInt32()]).SkipLast(1));
        foreach (string line in File.ReadLines(DemoData("copy.dev.jsonl")).Take(8))
        {
            var row = JsonDocument.Parse(line).RootElement;
            lines.Add($"copy,{Text(row.GetProperty("input_ids"))},{Text(row.GetProperty("target_ids"))}");
        }
        File.WriteAllLines(In("copy.csv"), lines);
        string stop = string.Join(' ', lines[1].Split(',')[2].Split(' ')[1..3]);
        string[] Args(params string[] more) => ["predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}",
            "--data", In("copy.csv"), "--template", "{symbols} <sep>", "--target-column", "answer", "--out", In("pred.jsonl"), "--device", "cpu", .. more];
        var (code, _, stderr) = CliRunner.Run(Args("--stop", stop, "--stop", "no such symbols"));
        Assert.That(code, Is.EqualTo(0), stderr);
        var predictions = Lines(In("pred.jsonl"));
        for (int i = 0; i < predictions.Count; i++)
        {
            string gold = lines[i + 1].Split(',')[2];
            int at = gold.IndexOf(stop, StringComparison.Ordinal);
            Assert.That(predictions[i].GetProperty("prediction").GetString(), Is.EqualTo(at < 0 ? gold : gold[..at]), $"row {i + 1}, stop \"{stop}\"");
        }
        Assert.That(predictions[0].GetProperty("tokens").GetArrayLength(), Is.EqualTo(3), "row 1 ends with the token that completes the stop string");
        var (bad, _, error) = CliRunner.Run(Args("--stop", ""));
        Assert.That(bad, Is.Not.Zero);
        Assert.That(error, Does.Contain("--stop").And.Not.Contain("`StopStrings"));
    }

    /// <summary>
    /// Prompts of different lengths serve one file: the copy prompt (P = 4) and, for the reverse rows, a random P = 6
    /// prompt. Every row's line equals the line that predicting its task alone writes.
    /// </summary>
    [Category("Slow")]
    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void PromptsOfDifferentLengthsShareBatches(string device)
    {
        if (device == "cuda-emulated" && !SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        string longer = In("long.safetensors");
        var metadata = PromptFile.Load(DemoModel.Prompt("copy")).Metadata;
        new PromptFile(TestModels.RandomPrompts<float>(6 * 64, seed: 3), 6, 64, metadata).Save(longer);
        string data = MixedCopyReverse(5);
        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}", "--prompt", $"reverse={longer}",
            "--data", data, "--out", In("mixed.out.jsonl"), "--batch-size", "4", "--device", device);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("prompts of P=4/6 in shared batches"));
        var mixed = Lines(In("mixed.out.jsonl"));

        var alone = new Dictionary<string, List<JsonElement>>();
        foreach (var (task, prompt) in new[] { ("copy", DemoModel.Prompt("copy")), ("reverse", longer) })
        {
            string only = In(task + ".only.jsonl");
            File.WriteAllLines(only, File.ReadLines(data).Where(l => l.Contains($"\"task\":\"{task}\"")));
            (code, _, stderr) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"{task}={prompt}", "--data", only, "--out", In(task + ".out.jsonl"),
                "--batch-size", "4", "--device", device);
            Assert.That(code, Is.EqualTo(0), stderr);
            alone[task] = Lines(In(task + ".out.jsonl"));
        }
        var next = new Dictionary<string, int> { ["copy"] = 0, ["reverse"] = 0 };
        foreach (var line in mixed)
        {
            string task = line.GetProperty("task").GetString()!;
            var own = alone[task][next[task]++];
            Assert.That(Ids(line.GetProperty("prediction")), Is.EqualTo(Ids(own.GetProperty("prediction"))), $"row {line.GetProperty("row")} ({task})");
            Assert.That(line.GetProperty("score").GetDouble(), Is.EqualTo(own.GetProperty("score").GetDouble()).Within(1e-4), $"row {line.GetProperty("row")} score");
        }
        Assert.That(mixed.Where(l => l.GetProperty("task").GetString() == "copy").All(l => l.GetProperty("correct").GetBoolean()), "the copy rows are still copied");
    }

    [Test]
    public void ARowOfATaskWithoutAPromptIsNamed()
    {
        var (code, _, stderr) = CliRunner.Run("predict", "--model", Demo, "--prompt", $"copy={DemoModel.Prompt("copy")}",
            "--data", MixedCopyReverse(2), "--out", In("pred.jsonl"), "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("mixed.jsonl, row 2").And.Contain("task \"reverse\" has no prompt").And.Contain("--prompt reverse=FILE"));
    }

    [TestCase("copy", "write TASK=FILE")]
    [TestCase("copy=a.safetensors --prompt copy=b.safetensors", "given twice")]
    public void MalformedPromptFlagsAreExplained(string spec, string message)
    {
        var prompts = spec.Split(' ');
        var (code, _, stderr) = CliRunner.Run(["predict", "--model", Demo, "--prompt", .. prompts, "--data", "x.jsonl", "--out", In("p.jsonl")]);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain(message));
    }
}

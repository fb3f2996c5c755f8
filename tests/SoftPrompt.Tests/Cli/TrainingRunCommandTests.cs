using System.Runtime.InteropServices;
using System.Text.Json;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>`train` end to end on the bundled demo model: outputs, metrics log, curves, JSON, checkpoints and resume, text data.</summary>
public sealed class TrainingRunCommandTests : CliScratch
{
    private static readonly byte[] PngMagic = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    [Category("Slow")]
    [Test]
    public void WithDevDataTheBestPromptTheLastOneTheLogTheCurvesAndJsonAreWritten()
    {
        string output = In("reverse.safetensors");
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", Demo, "--data", DemoData("reverse.train.jsonl"), "--dev", DemoData("reverse.dev.jsonl"),
            "--prompt-length", "4", "--lr", "0.1", "--batch-size", "16", "--steps", "12", "--eval-every", "4", "--out", output,
            "--checkpoint-dir", In("ck"), "--keep-last", "2", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);

        var json = ParseJson(stdout);
        Assert.That(json.GetProperty("stop").GetString(), Is.EqualTo("completed"));
        Assert.That(json.GetProperty("steps").GetInt32(), Is.EqualTo(12));
        Assert.That(json.GetProperty("out").GetString(), Is.EqualTo(output));
        Assert.That(json.GetProperty("last").GetString(), Is.EqualTo(In("reverse.last.safetensors")));
        var best = json.GetProperty("best");
        int bestStep = best.GetProperty("step").GetInt32();
        Assert.That(bestStep, Is.AnyOf(4, 8, 12));
        Assert.That(best.GetProperty("primary").GetString(), Is.EqualTo("exact_match"));
        Assert.That(best.GetProperty("metrics").GetProperty("loss").GetDouble(), Is.GreaterThan(0));
        Assert.That(stderr, Does.Contain("eval  step 4:").And.Contain("checkpoint step 12"), "people read progress on stderr under --json");

        var chosen = PromptFile.Load(output);
        Assert.That(chosen.Metadata["selected"], Is.EqualTo("best-dev"));
        Assert.That(chosen.Metadata["step"], Is.EqualTo(bestStep.ToString()));
        Assert.That(chosen.Metadata, Does.ContainKey("dev_exact_match").And.ContainKey(PromptFile.FingerprintKey).And.ContainKey("model_layers"));
        Assert.That(chosen.Metadata["init"], Is.EqualTo("random-uniform"));
        var last = PromptFile.Load(In("reverse.last.safetensors"));
        Assert.That(last.Metadata["selected"], Is.EqualTo("last"));
        Assert.That(last.Metadata["step"], Is.EqualTo("12"));

        var records = MetricsLog.Read(In("reverse.metrics.jsonl"));
        var train = records.Where(r => r.Kind == "train").ToList();
        Assert.That(train.Select(r => r.Step), Is.EqualTo(Enumerable.Range(1, 12)));
        foreach (string field in new[] { "loss", "lr", "tokens_per_second", "elapsed_s" })
            Assert.That(train.Select(r => r.Values[field]), Has.All.GreaterThan(0), field);
        // grad_norm waits for the device: rows carry it on the first and last step, every 10th, and where a progress line showed it.
        var withNorm = train.Where(r => r.Values.ContainsKey("grad_norm")).ToList();
        Assert.That(withNorm.Select(r => r.Step), Is.SupersetOf(new[] { 1, 10, 12 }));
        Assert.That(withNorm.Select(r => r.Values["grad_norm"]), Has.All.GreaterThan(0));
        Assert.That(train.Select(r => r.Values["lr"]), Has.All.EqualTo(0.1).Within(1e-7));
        var evals = records.Where(r => r.Kind == "eval").ToList();
        Assert.That(evals.Select(r => r.Step), Is.EqualTo(new[] { 4, 8, 12 }));
        Assert.That(evals.Select(r => r.Values.Keys), Has.All.Contains("dev_exact_match").And.All.Contains("dev_loss"));

        Assert.That(File.ReadAllBytes(In("reverse.curves.png")).Take(8), Is.EqualTo(PngMagic), "a PNG");
        Assert.That(new FileInfo(In("reverse.curves.png")).Length, Is.GreaterThan(10_000));
        Assert.That(Directory.GetFiles(In("ck")).Select(Path.GetFileName), Is.EquivalentTo(new[] { "checkpoint-00000008.safetensors", "checkpoint-00000012.safetensors" }));
        Assert.That(PromptFile.Load(In("ck/checkpoint-00000012.safetensors")).Values, Is.EqualTo(last.Values), "a checkpoint reads as a prompt file");
    }

    [Category("Slow")]
    [Test]
    public void ResumingEndsWithTheSamePromptBytesAsOneRun()
    {
        string[] Args(string output, string steps, string checkpoints) =>
        [
            "train", "--model", Demo, "--data", DemoData("sort.train.jsonl"), "--prompt-length", "4", "--optimizer", "adafactor", "--lr", "0.3",
            "--batch-size", "8", "--grad-accum", "2", "--steps", steps, "--out", output, "--checkpoint-dir", checkpoints, "--no-plot",
        ];
        var (code, _, stderr) = CliRunner.Run(Args(In("whole.safetensors"), "6", In("whole")));
        Assert.That(code, Is.EqualTo(0), stderr);
        (code, _, stderr) = CliRunner.Run(Args(In("split.safetensors"), "3", In("split")));
        Assert.That(code, Is.EqualTo(0), stderr);
        var (again, stdout, error) = CliRunner.Run([.. Args(In("split.safetensors"), "6", In("split")), "--resume"]);
        Assert.That(again, Is.EqualTo(0), error);
        Assert.That(stdout, Does.Contain("resumed from").And.Contain("at step 3"));

        var whole = PromptFile.Load(In("whole.safetensors")).Values;
        var split = PromptFile.Load(In("split.safetensors")).Values;
        Assert.That(MemoryMarshal.AsBytes(split.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(whole.AsSpan())), "bit-identical prompt");
        Assert.That(MetricsLog.Read(In("split.metrics.jsonl")).Select(r => r.Step), Is.EqualTo(Enumerable.Range(1, 6)), "the log continues across the resume");
    }

    [Test]
    public void AFreshRunDoesNotMixIntoAnotherRunsCheckpoints()
    {
        string[] args = ["train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "4", "--steps", "2", "--out", In("p.safetensors"),
            "--checkpoint-dir", In("ck"), "--no-plot"];
        Assert.That(CliRunner.Run(args).ExitCode, Is.EqualTo(0));
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("already holds checkpoints").And.Contain("--resume"));
    }

    [Category("Slow")]
    [Test]
    public void TextClassificationWithTheLesterRecipeThenEval()
    {
        string train = MajorityCsv("train", "3", "7", "a"), dev = MajorityCsv("dev", "3", "7", "a");
        string[] columns = ["--template", "{symbols} <sep>", "--target-column", "majority", "--labels", "3=3,7=7,a=a"];
        var (code, stdout, stderr) = CliRunner.Run([
            "train", "--model", Demo, "--data", train, "--dev", dev, .. columns, "--recipe", "lester2021",
            "--prompt-length", "4", "--steps", "30", "--eval-every", "10", "--batch-size", "16", "--out", In("cls.safetensors"), "--json", "--no-plot"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stderr, Does.Contain("P=4 prompt (class-labels)").And.Contain("adafactor lr 0.3 constant").And.Contain("rank classification"));
        var best = ParseJson(stdout).GetProperty("best");
        Assert.That(best.GetProperty("primary").GetString(), Is.EqualTo("accuracy"));
        double accuracy = best.GetProperty("metrics").GetProperty("accuracy").GetDouble();
        Assert.That(accuracy, Is.GreaterThanOrEqualTo(0.9));
        var metadata = PromptFile.Load(In("cls.safetensors")).Metadata;
        Assert.That(metadata["recipe"], Is.EqualTo("lester2021"));
        Assert.That(metadata["optimizer"], Is.EqualTo("adafactor"));

        (code, stdout, stderr) = CliRunner.Run(["eval", "--model", Demo, "--prompt", In("cls.safetensors"), "--data", dev, .. columns, "--json"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var eval = ParseJson(stdout);
        Assert.That(eval.GetProperty("task").GetString(), Is.EqualTo("classification"));
        Assert.That(eval.GetProperty("metrics").GetProperty("accuracy").GetDouble(), Is.EqualTo(accuracy), "the same prompt on the same dev file");
        Assert.That(eval.GetProperty("labels").EnumerateArray().Select(l => l.GetString()), Is.EqualTo(new[] { "3", "7", "a" }));
        Assert.That(eval.GetProperty("per_class").GetArrayLength(), Is.EqualTo(3));
        int rows = eval.GetProperty("confusion").EnumerateArray().Sum(r => r.EnumerateArray().Sum(n => n.GetInt32()));
        Assert.That(rows, Is.EqualTo(eval.GetProperty("rows").GetInt32()));
    }

    [Test]
    public void TheRecipeAsksForDevData()
    {
        var (code, _, stderr) = CliRunner.Run("train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--out", In("p.safetensors"), "--recipe", "lester2021");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("--dev"));
    }
}

/// <summary>The --init kinds through the CLI; with lr 0 the written prompt is the initial one.</summary>
public sealed class TrainInitCommandTests : CliScratch
{
    private float[] Initial(params string[] init)
    {
        string output = In("p.safetensors");
        var (code, _, stderr) = CliRunner.Run(["train", "--model", Demo, "--data", DemoData("majority.train.jsonl"), "--prompt-length", "6",
            "--steps", "1", "--lr", "0", "--optimizer", "sgd", "--out", output, "--no-plot", .. init]);
        Assert.That(code, Is.EqualTo(0), stderr);
        return PromptFile.Load(output).Values;
    }

    private static int[] RowTokens(float[] prompt, float[] table, int width) =>
        [.. Enumerable.Range(0, prompt.Length / width).Select(row => Enumerable.Range(0, table.Length / width)
            .Single(id => table.AsSpan(id * width, width).SequenceEqual(prompt.AsSpan(row * width, width))))];

    [Test]
    public void SampledVocabAndTextInitsAreRowsOfTheEmbeddingTable()
    {
        using var model = Tuning.DemoModel.Open();
        int width = model.Config.Embedding;
        var sampled = RowTokens(Initial("--init", "sampled-vocab"), model.TokenEmbedding, width);
        Assert.That(sampled.Distinct().Count(), Is.EqualTo(6));
        Assert.That(sampled, Has.None.EqualTo(22), "the tokenizer's <eos> is never sampled");
        Assert.That(sampled, Has.All.LessThan(17), "majority rows hold only symbols and <sep>");
        Assert.That(RowTokens(Initial("--init", "text:<majority> 7"), model.TokenEmbedding, width), Is.EqualTo(new[] { 21, 7, 21, 7, 21, 7 }));
    }
}

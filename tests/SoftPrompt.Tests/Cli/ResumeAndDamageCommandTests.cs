using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Issue 14 items 8, 10 and 11 on the demo model: a finished run is not rewritten by --resume; damaged checkpoints and
/// implausible checkpoint metadata fail with one line instead of starting over or hanging; a non-finite loss names its
/// likely cause; `info` checks the weights are there.
/// </summary>
public sealed class ResumeAndDamageCommandTests : CliScratch
{
    private string[] Train(string steps, params string[] extra) =>
    [
        "train", "--model", Demo, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "4", "--batch-size", "4", "--steps", steps,
        "--out", In("p.safetensors"), "--checkpoint-dir", In("ck"), "--checkpoint-every", "1", "--no-plot", .. extra,
    ];

    [Test]
    public void ResumingAFinishedRunSaysItIsCompleteAndLeavesTheOutputAlone()
    {
        Assert.That(CliRunner.Run(Train("2")).ExitCode, Is.EqualTo(0));
        byte[] before = File.ReadAllBytes(In("p.safetensors"));
        var (code, stdout, stderr) = CliRunner.Run(Train("2", "--resume"));
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("is complete (step 2 of 2)").And.Contain("Raise --steps"));
        Assert.That(File.ReadAllBytes(In("p.safetensors")), Is.EqualTo(before), "--out keeps the finished run's prompt and metadata");
    }

    [Test]
    public void ResumeFailsWhenEveryCheckpointIsDamaged()
    {
        Assert.That(CliRunner.Run(Train("2")).ExitCode, Is.EqualTo(0));
        var checkpoints = Directory.GetFiles(In("ck"), "checkpoint-*.safetensors");
        Assert.That(checkpoints, Has.Length.GreaterThan(0));
        foreach (string file in checkpoints) File.WriteAllBytes(file, File.ReadAllBytes(file)[..40]);
        var (code, _, stderr) = CliRunner.Run(Train("4", "--resume"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain($"all {checkpoints.Length} checkpoints are damaged").And.Contain("cannot resume"));
        Assert.That(stderr.Trim().Split('\n').Last(), Does.StartWith("error: "));
    }

    [Test]
    public void AnImplausibleDataPositionIsRefusedInsteadOfReplayed()
    {
        Assert.That(CliRunner.Run(Train("2")).ExitCode, Is.EqualTo(0));
        foreach (string file in Directory.GetFiles(In("ck"), "checkpoint-*.safetensors"))
            EditMetadata(file, metadata => metadata["sampler_epoch"] = "2000000000");
        var run = Task.Run(() => CliRunner.Run(Train("4", "--resume")));
        Assert.That(run.Wait(TimeSpan.FromSeconds(60)), "the resume returns instead of replaying two billion shuffles");
        var (code, _, stderr) = run.Result;
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("data position (epoch 2000000000").And.Contain("metadata is damaged"));
    }

    [Test]
    public void ANonFiniteLossFromTheModelNamesTheWeights()
    {
        string model = In("nan-model");
        Directory.CreateDirectory(model);
        foreach (string file in Directory.GetFiles(Demo)) File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        PoisonTensor(Path.Combine(model, "model.safetensors"), "ln_f.weight");
        string[] args = ["train", "--model", model, "--data", DemoData("copy.train.jsonl"), "--prompt-length", "4", "--steps", "2", "--out", In("p.safetensors"), "--no-plot"];
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("at step 1, before any update").And.Contain("its weights hold NaN or infinity"));
        Assert.That(stderr, Does.Not.Contain("--lr"), "lowering the learning rate cannot help here");
    }

    [Test]
    public void InfoChecksTheWeightsAreThere()
    {
        string missing = In("no-weights"), truncated = In("truncated");
        Directory.CreateDirectory(missing);
        Directory.CreateDirectory(truncated);
        File.Copy(Path.Combine(Demo, "config.json"), Path.Combine(missing, "config.json"));
        File.Copy(Path.Combine(Demo, "config.json"), Path.Combine(truncated, "config.json"));
        byte[] weights = File.ReadAllBytes(Path.Combine(Demo, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(truncated, "model.safetensors"), weights[..(weights.Length / 2)]);

        var (code, stdout, stderr) = CliRunner.Run("info", missing);
        Assert.That(code, Is.EqualTo(1), stdout);
        Assert.That(stderr, Does.Contain("no model.safetensors"));
        (code, stdout, stderr) = CliRunner.Run("info", truncated);
        Assert.That(code, Is.EqualTo(1), stdout);
        Assert.That(stderr, Does.Contain("truncated"));
        (code, stdout, _) = CliRunner.Run("info", Demo);
        Assert.That(code, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("fingerprint"));
    }

    /// <summary>Rewrites a safetensors file's __metadata__ (the header grows or shrinks; the data stays as it is).</summary>
    private static void EditMetadata(string path, Action<JsonObject> edit)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        edit(header["__metadata__"]!.AsObject());
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var output = new byte[8 + padded + bytes.Length - 8 - headerLength];
        BinaryPrimitives.WriteUInt64LittleEndian(output, (ulong)padded);
        json.CopyTo(output, 8);
        output.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        bytes.AsSpan(8 + headerLength).CopyTo(output.AsSpan(8 + padded));
        File.WriteAllBytes(path, output);
    }

    /// <summary>Writes NaN into the first element of an F32 tensor in place.</summary>
    private static void PoisonTensor(string path, string tensor)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        long start = header[tensor]!["data_offsets"]![0]!.GetValue<long>();
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(8 + headerLength + start)), float.NaN);
        File.WriteAllBytes(path, bytes);
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SoftPrompt.Models;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tests.Tools;

/// <summary>
/// tools/bench/pytorch_step.py, the PyTorch side of every speed ratio we quote: its shapes are ours, its models equal the
/// reference models, and it runs a step on the CPU. Needs /usr/bin/python3 (with torch for all but the shape test:
/// `tools/install-deps.sh torch`, which .ci/run does).
/// </summary>
public class PytorchStepScriptTests
{
    private const string Python = "/usr/bin/python3";
    private static string Script => Path.Combine(TestContext.CurrentContext.TestDirectory, "tools", "bench", "pytorch_step.py");

    [Test]
    public void EveryNamedShapeLoadsAsTheEngineShapeOfTheSameName()
    {
        var (code, output, _) = RunScript("--list-shapes", torchNeeded: false);
        Assert.That(code, Is.Zero, output);
        var shapes = JsonNode.Parse(output)!.AsObject();
        var ours = ModelFamily.All.SelectMany(f => f.ShapeNames).ToList();
        Assert.That(shapes.Select(s => s.Key), Is.EquivalentTo(ours), "pytorch_step.py names other shapes than `softprompt bench --shape`");
        foreach (var (name, config) in shapes)
        {
            // The script's shapes are Hugging Face config.json dicts: read them with our own loaders and compare whole configs.
            string path = Path.GetTempFileName();
            try
            {
                File.WriteAllText(path, config!.ToJsonString());
                IModelConfig loaded = (string?)config["model_type"] switch
                {
                    "gpt2" => Gpt2Config.Load(path),
                    "llama" => LlamaConfig.Load(path),
                    "t5" => T5Config.Load(path),
                    var other => throw new AssertionException($"shape {name}: model_type {other}"),
                };
                Assert.That(loaded, Is.EqualTo(ModelFamily.OfShape(name)!.Shape(name)), $"shape {name}");
            }
            finally { File.Delete(path); }
        }
    }

    [Test, Category("Slow")]
    public void TheFastModelsEqualTheReferenceModelsInFloat64()
    {
        var (code, output, error) = RunScript("--self-check", torchNeeded: true);
        Assert.That(code, Is.Zero, error);
        var result = JsonNode.Parse(output)!;
        Assert.That((string?)result["self_check"], Is.EqualTo("passed"));
        Assert.That(result["cases"]!.AsObject().Select(c => c.Key), Is.SupersetOf(new[] { "gpt2", "llama-gqa-llama3-rope", "t5-v1.1", "t5-v1.0" }));
    }

    [TestCase("--shape", "gpt2-small", 50257, 0)]
    [TestCase("--shape", "t5-small", 32128, 3)]
    [TestCase("--config", "fixtures/llama/tiny/config.json", -1, 0)]
    [Category("Slow")]
    public void AStepRunsOnTheCpuAndCountsTokensAsOurBench(string how, string what, int vocab, int targets)
    {
        if (how == "--config") what = Path.Combine(TestContext.CurrentContext.TestDirectory, what);
        var arguments = new List<string> { how, what, "--device", "cpu", "--batch-size", "2", "--seq-len", "6", "--prompt-length", "3", "--steps", "2", "--warmup", "1", "--threads", "1" };
        if (targets > 0) arguments.AddRange(["--targets", targets.ToString()]);
        var (code, output, error) = RunScript(string.Join(' ', arguments), torchNeeded: true);
        Assert.That(code, Is.Zero, error);
        var r = JsonNode.Parse(output)!;
        double ms = (double)r["ms_per_step"]!, tokensPerSecond = (double)r["tokens_per_second"]!;
        bool t5 = (string?)r["family"] == "t5";
        int rowTargets = (int)r["targets_per_row"]!;
        Assert.That(rowTargets, Is.EqualTo(targets > 0 ? targets : 6 - 1), "default targets as `softprompt bench`: all but the first token");
        int positions = 3 + 6 + (t5 ? rowTargets : 0);
        Assert.That(tokensPerSecond * ms / 1000, Is.EqualTo(2 * positions).Within(1e-6).Percent, "tokens/s = rows × positions / step time");
        double loss = (double)r["loss"]!;
        if (vocab < 0) vocab = JsonNode.Parse(File.ReadAllText(what))!["vocab_size"]!.GetValue<int>();
        // Random weights of std 0.02 give near-uniform next-token probabilities: the loss sits at ln V.
        Assert.That(loss, Is.EqualTo(Math.Log(vocab)).Within(0.5), "mean cross-entropy of a near-uniform model");
    }

    private static (int Code, string Output, string Error) RunScript(string arguments, bool torchNeeded)
    {
        if (!File.Exists(Python)) Assert.Ignore($"{Python} is missing (tools/install-deps.sh torch installs it)");
        if (torchNeeded)
        {
            using var probe = Process.Start(new ProcessStartInfo(Python, "-c \"import torch\"") { RedirectStandardError = true })!;
            probe.WaitForExit();
            if (probe.ExitCode != 0) Assert.Ignore("PyTorch is not installed for /usr/bin/python3 (tools/install-deps.sh torch)");
        }
        var start = new ProcessStartInfo(Python, $"{Script} {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Trim(), stderr.Result);
    }
}

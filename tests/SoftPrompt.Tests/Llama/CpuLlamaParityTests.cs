using SoftPrompt.Engines;
using SoftPrompt.Models.Llama;
using SoftPrompt.Tests.Engines;

namespace SoftPrompt.Tests.Llama;

/// <summary>
/// The CPU Llama engine against PyTorch autograd (fixtures from tools/reference/llama_reference.py, in the decoder-only
/// layout the GPT-2 fixtures use): grouped-query and multi-query attention, head_dim ≠ d/heads, rope_theta 500000 with
/// Llama-3 scaling, tied and untied heads, prompts serving several rows, an empty input; Qwen2 (q/k/v biases, tied) and
/// Llama with attention_bias (q/k/v/o biases).
/// </summary>
public sealed class CpuLlamaParityTests
{
    private static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "llama");

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (model, caseName) in new[] { ("tiny", "case-a"), ("tiny", "case-b"), ("tiny", "case-c"), ("tiny-tied-llama3", "case-a"), ("tiny-tied-llama3", "case-b"),
            ("tiny-qwen2", "case-a"), ("tiny-qwen2", "case-b"), ("tiny-attention-bias", "case-a") })
            yield return new TestCaseData(model, caseName).SetName($"{{m}}({model}/{caseName})");
    }

    [TestCaseSource(nameof(Cases))]
    public void Float32MatchesPyTorch(string model, string caseName)
    {
        var fixture = Gpt2Fixture.LoadFrom(Path.Combine(Root, model), caseName);
        using var engine = new CpuLlamaEngine<float>(LlamaCheckpoint.Load<float>(fixture.ModelDirectory));
        fixture.AssertEngineMatches(engine, (batch, logits) => engine.Logits(batch, logits), lossTolerance: 1e-5, gradientTolerance: 1e-4);
    }

    [TestCaseSource(nameof(Cases))]
    public void Float64MatchesPyTorchFloat64(string model, string caseName)
    {
        var fixture = Gpt2Fixture.LoadFrom(Path.Combine(Root, model), caseName);
        using var engine = new CpuLlamaEngine<double>(LlamaCheckpoint.Load<double>(fixture.ModelDirectory));
        engine.LoadPrompts(fixture.Prompts.Select(v => (double)v).ToArray(), fixture.PromptCount, fixture.PromptLength);
        double loss = engine.LossAndGradient(fixture.Batch(), accumulate: false, 1.0);
        Assert.That(Math.Abs(loss - fixture.LossF64) / Math.Abs(fixture.LossF64), Is.LessThan(1e-10), "loss relative error (fp64)");
        Assert.That(Gpt2Fixture.RelativeError(engine.PromptGradient, fixture.PromptGradientF64), Is.LessThan(1e-9), "prompt gradient relative error (fp64)");
    }

    [Test]
    public void TheFactoryOpensALlamaDirectoryOnTheCpu()
    {
        using var model = EngineFactory.Open(Path.Combine(Root, "tiny-tied-llama3"), "cpu");
        Assert.That(model.Family.Name, Is.EqualTo("llama"));
        Assert.That(model.Engine, Is.InstanceOf<CpuLlamaEngine<float>>());
        var config = (LlamaConfig)model.Config;
        Assert.That((config.Heads, config.KeyValueHeads, config.HeadSize, config.TiedEmbeddings), Is.EqualTo((6, 1, 12, true)));
        Assert.That(config.RopeScaling!.Type, Is.EqualTo(LlamaRopeScaling.Llama3));
        var e = Assert.Throws<ArgumentException>(() => EngineFactory.Open(Path.Combine(Root, "tiny"), "tpu"));
        Assert.That(e!.Message, Does.Contain("Unknown device 'tpu'"));
    }
}

/// <summary>Mistral's config (model_type "mistral", a sliding window) opens as a Llama-style model limited to its window.</summary>
public sealed class MistralConfigTests
{
    [Test]
    public void WithinTheWindowAMistralConfigIsTheLlamaModelAndLongerSequencesAreRefused()
    {
        string source = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "llama", "tiny");
        string dir = Directory.CreateTempSubdirectory("softprompt-mistral-").FullName;
        try
        {
            File.Copy(Path.Combine(source, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
            config["model_type"] = "mistral";
            config["architectures"] = new System.Text.Json.Nodes.JsonArray("MistralForCausalLM");
            config["sliding_window"] = 16;
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());

            using var mistral = EngineFactory.Open(dir, "cpu");
            using var llama = EngineFactory.Open(source, "cpu");
            Assert.That(mistral.Family.Name, Is.EqualTo("llama"));
            Assert.That(mistral.Engine.MaxPositions, Is.EqualTo(16), "the window bounds the sequence");
            var fixture = Gpt2Fixture.LoadFrom(source, "case-a");  // 14 positions: inside the window
            foreach (var model in new[] { mistral, llama }) model.Engine.LoadPrompts(fixture.Prompts, fixture.PromptCount, fixture.PromptLength);
            Assert.That(mistral.Engine.Forward(fixture.Batch()), Is.EqualTo(llama.Engine.Forward(fixture.Batch())));

            var longer = new TokenBatch(1, 16, fixture.PromptLength);
            longer.Reset(16);
            longer.AddRow([.. Enumerable.Range(1, 12)], [3, 4], 0);
            var e = Assert.Throws<ArgumentException>(() => mistral.Engine.Forward(longer));
            Assert.That(e!.Message, Does.Contain("limit of 16 positions"));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

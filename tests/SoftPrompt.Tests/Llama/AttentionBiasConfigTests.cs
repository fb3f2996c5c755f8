using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Tests.Llama;

/// <summary>
/// Qwen2 (model_type "qwen2": q/k/v biases) and Llama's attention_bias (q/k/v/o biases) read from config.json, the
/// sliding window Qwen2 configs name but use only with use_sliding_window, and biases the config does not declare.
/// The arithmetic is checked against PyTorch by the parity tests (tiny-qwen2, tiny-attention-bias).
/// </summary>
public sealed class AttentionBiasConfigTests
{
    private static string Fixtures => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "llama");
    private string _scratch = "";

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("softprompt-bias-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    /// <summary>The fixture <paramref name="model"/> copied with its config edited by <paramref name="edit"/>.</summary>
    private string CopyWithConfig(string model, Action<JsonObject> edit)
    {
        File.Copy(Path.Combine(Fixtures, model, "model.safetensors"), Path.Combine(_scratch, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures, model, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(_scratch, "config.json"), config.ToJsonString());
        return _scratch;
    }

    [Test]
    public void Qwen2OpensAsALlamaStyleModelWithQueryKeyValueBiases()
    {
        string dir = Path.Combine(Fixtures, "tiny-qwen2");
        Assert.That(ModelFamily.Detect(dir), Is.SameAs(ModelFamily.Llama));
        var config = (LlamaConfig)ModelFamily.Llama.LoadConfig(dir);
        Assert.That((config.QueryKeyValueBiases, config.OutputBias, config.TiedEmbeddings), Is.EqualTo((true, false, true)));
        Assert.That(config.SequenceLimit, Is.EqualTo(64), "sliding_window 16 is unused while use_sliding_window is false");
        Assert.That(ModelFamily.Llama.Outline(config), Does.Contain("q/k/v biases"));

        var llama = (LlamaConfig)ModelFamily.Llama.LoadConfig(Path.Combine(Fixtures, "tiny-attention-bias"));
        Assert.That((llama.QueryKeyValueBiases, llama.OutputBias), Is.EqualTo((true, true)));
        Assert.That(ModelFamily.Llama.Describe(llama)[0].Text, Does.Contain("q/k/v/o biases"));
    }

    [Test]
    public void Qwen2UsingItsSlidingWindowIsLimitedToTheWindow()
    {
        string dir = CopyWithConfig("tiny-qwen2", c => c["use_sliding_window"] = true);
        using var model = EngineFactory.Open(dir, "cpu");
        Assert.That(model.Engine.MaxPositions, Is.EqualTo(16), "within the window sliding-window attention is causal attention; beyond it it is not");
    }

    [Test]
    public void ABiasTheConfigDoesNotDeclareIsRefused()
    {
        // Qwen2's weights under a Llama config without attention_bias: running them would drop the biases.
        string dir = CopyWithConfig("tiny-qwen2", c => c["model_type"] = "llama");
        var e = Assert.Throws<CheckpointException>(() => LlamaCheckpoint.Load<float>(dir));
        Assert.That(e!.Message, Does.Contain("self_attn.q_proj.bias").And.Contain("declares no such bias"));
    }

    [Test]
    public void MissingDeclaredBiasesAndMlpBiasesAreRefused()
    {
        string dir = CopyWithConfig("tiny", c => c["attention_bias"] = true);
        var missing = Assert.Throws<CheckpointException>(() => LlamaCheckpoint.Load<float>(dir));
        Assert.That(missing!.Message, Does.Contain("no tensor 'model.layers.0.self_attn.q_proj.bias'"));

        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(Fixtures, "tiny", "config.json")).Replace("\"mlp_bias\": false", "\"mlp_bias\": true"));
        var mlp = Assert.Throws<CheckpointException>(() => LlamaConfig.Load(Path.Combine(dir, "config.json")));
        Assert.That(mlp!.Message, Does.Contain("mlp_bias=true"));
    }

    [Test]
    public void TheFingerprintTellsBiasedModelsApart()
    {
        var plain = LlamaTestModels.TinyConfig();
        var table = new float[plain.VocabSize * plain.Embedding];
        string[] prints =
        [
            ModelFingerprint.Of(plain, table),
            ModelFingerprint.Of(plain with { QueryKeyValueBiases = true }, table),
            ModelFingerprint.Of(plain with { QueryKeyValueBiases = true, OutputBias = true }, table),
        ];
        Assert.That(prints, Is.Unique);
    }
}

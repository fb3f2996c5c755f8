using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models.Llama;
using SoftPrompt.Tests.Engines;

namespace SoftPrompt.Tests.Llama;

/// <summary>
/// RoPE settings in both config.json forms: transformers v4 (top-level rope_theta / rope_scaling) and v5
/// (rope_parameters, written on every save). The tiny-tied-llama3 fixture was made by PyTorch with θ = 500000 and
/// llama3 scaling; re-saved in the v5 form it must still compute PyTorch's logits and gradient.
/// </summary>
public sealed class LlamaRopeConfigTests
{
    private static string Fixture => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "llama", "tiny-tied-llama3");
    private string _scratch = "";

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("softprompt-rope-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    /// <summary>The fixture copied with its config edited by <paramref name="edit"/>.</summary>
    private string CopyWithConfig(Action<JsonObject> edit)
    {
        foreach (string file in new[] { "model.safetensors", "case-a.safetensors" }) File.Copy(Path.Combine(Fixture, file), Path.Combine(_scratch, file));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(_scratch, "config.json"), config.ToJsonString());
        return _scratch;
    }

    /// <summary>v5's form: rope_theta and the scaling fields move into rope_parameters; the old keys are gone.</summary>
    private static void MoveToRopeParameters(JsonObject config)
    {
        var parameters = config["rope_scaling"]!.DeepClone().AsObject();
        parameters["rope_theta"] = config["rope_theta"]!.DeepClone();
        config.Remove("rope_scaling");
        config.Remove("rope_theta");
        config["rope_parameters"] = parameters;
    }

    private static LlamaConfig Load(string dir) => LlamaConfig.Load(Path.Combine(dir, "config.json"));

    [Test]
    public void V5RopeParametersReadAsTheV4Keys()
    {
        var v4 = Load(Fixture);
        Assert.That(v4.RopeTheta, Is.EqualTo(500000));
        Assert.That(Load(CopyWithConfig(MoveToRopeParameters)), Is.EqualTo(v4));
    }

    [Test]
    public void V5ConfigComputesPyTorchsLogitsAndGradient()
    {
        var fixture = Gpt2Fixture.LoadFrom(CopyWithConfig(MoveToRopeParameters), "case-a");
        using var engine = new CpuLlamaEngine<float>(LlamaCheckpoint.Load<float>(fixture.ModelDirectory));
        fixture.AssertEngineMatches(engine, (batch, logits) => engine.Logits(batch, logits), lossTolerance: 1e-5, gradientTolerance: 1e-4);
    }

    [Test]
    public void V5DefaultRopeTypeKeepsItsTheta()
    {
        var config = Load(CopyWithConfig(c =>
        {
            c.Remove("rope_scaling");
            c.Remove("rope_theta");
            c["rope_parameters"] = new JsonObject { ["rope_theta"] = 1e6, ["rope_type"] = "default" };
        }));
        Assert.That(config.RopeTheta, Is.EqualTo(1e6));
        Assert.That(config.RopeScaling, Is.Null);
    }

    [Test]
    public void BothFormsThatAgreeAreAccepted()
    {
        var both = Load(CopyWithConfig(c =>
        {
            var scaling = c["rope_scaling"]!.DeepClone().AsObject();
            scaling["rope_theta"] = 500000.0;
            c["rope_parameters"] = scaling;
        }));
        Assert.That(both, Is.EqualTo(Load(Fixture)));
    }

    [TestCase("rope_theta", "rope_theta 500000 and rope_parameters.rope_theta 10000 disagree")]
    [TestCase("factor", "rope_scaling (LlamaRopeScaling { Type = llama3, Factor = 8")]
    public void BothFormsThatDisagreeAreRefused(string changed, string expected)
    {
        string dir = CopyWithConfig(c =>
        {
            var parameters = c["rope_scaling"]!.DeepClone().AsObject();
            parameters["rope_theta"] = 500000.0;
            if (changed == "rope_theta") parameters["rope_theta"] = 10000.0;
            else parameters["factor"] = 4.0;
            c["rope_parameters"] = parameters;
        });
        var e = Assert.Throws<CheckpointException>(() => Load(dir))!;
        Assert.That(e.Message, Does.Contain(expected).And.Contain("disagree").And.Contain(Path.Combine(dir, "config.json")));
    }

    [Test]
    public void RopePerLayerTypeIsRefused()
    {
        string dir = CopyWithConfig(c => c["rope_parameters"] = new JsonObject
        {
            ["full_attention"] = new JsonObject { ["rope_theta"] = 1e6 },
            ["sliding_attention"] = new JsonObject { ["rope_theta"] = 1e4 },
        });
        Assert.That(() => Load(dir), Throws.TypeOf<CheckpointException>().With.Message.Contains("rope_parameters.full_attention gives RoPE per layer type"));
    }

    [Test]
    public void PartialRotaryFactorIsRefused()
    {
        string dir = CopyWithConfig(c =>
        {
            MoveToRopeParameters(c);
            c["rope_parameters"]!["partial_rotary_factor"] = 0.5;
        });
        Assert.That(() => Load(dir), Throws.TypeOf<CheckpointException>().With.Message.Contains("partial_rotary_factor 0.5 is not supported"));
    }
}

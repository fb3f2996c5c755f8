using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Tests.T5;

/// <summary>
/// T5 config.json as transformers v5 writes it (tie_word_embeddings: true for every T5, the old meaning kept in
/// scale_decoder_outputs) and the dense_act_fn / is_gated_act keys that override feed_forward_proj. The fixtures were
/// made by PyTorch from v4-style configs; the same weights under the v5 form must compute the same logits.
/// </summary>
public sealed class T5ConfigVersionTests
{
    private string _scratch = "";

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("softprompt-t5config-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    private string CopyWithConfig(string model, Action<JsonObject> edit)
    {
        string source = Path.Combine(T5Fixture.Root, model);
        foreach (string file in new[] { "model.safetensors", "case-a.safetensors" }) File.Copy(Path.Combine(source, file), Path.Combine(_scratch, file));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(_scratch, "config.json"), config.ToJsonString());
        return _scratch;
    }

    /// <summary>v5's save: the tie flag forced to true, the rescale recorded separately.</summary>
    private static Action<JsonObject> SavedByV5(bool rescale) => c =>
    {
        c["tie_word_embeddings"] = true;
        c["scale_decoder_outputs"] = rescale;
    };

    private static float[] Logits(string dir, T5Fixture fixture)
    {
        using var engine = new CpuT5Engine<float>(T5Checkpoint.Load<float>(dir));
        engine.LoadPrompts(fixture.Prompts.AsSpan(), fixture.PromptCount, fixture.PromptLength);
        var logits = new float[fixture.Logits.Length];
        engine.Logits(fixture.Batch(), logits);
        return logits;
    }

    private static int VocabOf(string dir) => T5Config.Load(Path.Combine(dir, "config.json")).VocabSize;

    [TestCase("v1_1", false)]
    [TestCase("v1_0", true)]
    public void V5ConfigComputesPyTorchsLogits(string model, bool rescale)
    {
        string dir = CopyWithConfig(model, SavedByV5(rescale));
        var fixture = T5Fixture.LoadFrom(dir, "case-a");
        var logits = Logits(dir, fixture);
        Assert.That(fixture.WorstLogitError<float>(logits, fixture.Logits, VocabOf(dir)), Is.LessThan(1e-4));
    }

    [TestCase("v1_1")]
    [TestCase("v1_0")]
    public void V5ConfigKeepsTheModelsFingerprintAndHead(string model)
    {
        var v4 = ModelFamily.T5.LoadTokenEmbedding(Path.Combine(T5Fixture.Root, model));
        var v5 = ModelFamily.T5.LoadTokenEmbedding(CopyWithConfig(model, SavedByV5(rescale: model == "v1_0")));
        Assert.That(v5.Fingerprint, Is.EqualTo(v4.Fingerprint), "a prompt trained under the v4 config must load under the v5 one");
        var config = (T5Config)v5.Config;
        Assert.That(config.TiedEmbeddings, Is.EqualTo(model == "v1_0"), "lm_head.weight is the head exactly when the checkpoint has one");
    }

    [Test]
    public void TiedHeadWithoutRescaleDividesNothing()
    {
        string scaledDir = Path.Combine(T5Fixture.Root, "v1_0");
        var fixture = T5Fixture.Load("v1_0", "case-a");
        var scaled = Logits(scaledDir, fixture);
        var unscaled = Logits(CopyWithConfig("v1_0", SavedByV5(rescale: false)), fixture);
        double sqrtD = Math.Sqrt(T5Config.Load(Path.Combine(scaledDir, "config.json")).Embedding);
        double worst = 0, largest = 0;
        for (int i = 0; i < scaled.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(unscaled[i] - scaled[i] * sqrtD));
            largest = Math.Max(largest, Math.Abs(unscaled[i]));
        }
        Assert.That(largest, Is.GreaterThan(0));
        Assert.That(worst / largest, Is.LessThan(1e-5), "the head is linear: without the d^-0.5 rescale every logit is √d times larger");
    }

    [TestCase("relu", null, true, "feed_forward_proj 'relu' means dense_act_fn 'relu' and is_gated_act false, but config.json says dense_act_fn 'relu' and is_gated_act true")]
    [TestCase("gated-gelu", "relu", null, "feed_forward_proj 'gated-gelu' means dense_act_fn 'gelu_new' and is_gated_act true, but config.json says dense_act_fn 'relu'")]
    [TestCase("gated-silu", null, null, "feed_forward_proj 'gated-silu' is not supported")]
    public void FeedForwardKeysThatDisagreeOrWeDoNotRunAreRefused(string projection, string? activation, bool? gated, string expected)
    {
        string dir = CopyWithConfig("v1_1", c =>
        {
            c["feed_forward_proj"] = projection;
            c.Remove("dense_act_fn");
            c.Remove("is_gated_act");
            if (activation is not null) c["dense_act_fn"] = activation;
            if (gated is not null) c["is_gated_act"] = gated;
        });
        Assert.That(() => T5Config.Load(Path.Combine(dir, "config.json")), Throws.TypeOf<CheckpointException>().With.Message.Contains(expected));
    }

    [Test]
    public void GeluPytorchTanhIsGeluNew()
    {
        string dir = CopyWithConfig("v1_1", c => c["dense_act_fn"] = "gelu_pytorch_tanh");
        Assert.That(T5Config.Load(Path.Combine(dir, "config.json")).IsGated, Is.True);
    }
}

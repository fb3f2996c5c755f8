using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Models;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Checkpoints;

namespace SoftPrompt.Tests.T5;

public sealed class T5CheckpointTests : CheckpointTestDirectory
{
    // d_kv·heads (6) ≠ d_model (8) and vocab ≠ d_ff so a swapped dimension cannot pass.
    private static T5Config Tiny(bool gated) => new(
        VocabSize: 11, Embedding: 8, HeadSize: 3, FeedForwardSize: 12, Layers: 2, DecoderLayers: 1, Heads: 2,
        RelativeBuckets: 6, RelativeMaxDistance: 10, FeedForwardProjection: gated ? T5Config.GatedGelu : T5Config.Relu,
        TiedEmbeddings: !gated, LayerNormEpsilon: 1e-6);

    private static IEnumerable<(string Name, float[]? Data)> Tensors(T5Weights<float> w)
    {
        yield return ("shared", w.TokenEmbedding);
        yield return ("lm_head", w.LanguageModelHead);
        yield return ("encoder bias", w.EncoderRelativeBias);
        yield return ("decoder bias", w.DecoderRelativeBias);
        yield return ("encoder final", w.EncoderFinalNormWeight);
        yield return ("decoder final", w.DecoderFinalNormWeight);
        IEnumerable<float[]?> Attention(T5AttentionWeights<float> a) => [a.Query, a.Key, a.Value, a.Output];
        IEnumerable<float[]?> FeedForward(T5FeedForwardWeights<float> f) => [f.Input, f.Linear, f.Output];
        for (int i = 0; i < w.EncoderLayers.Length; i++)
        {
            var l = w.EncoderLayers[i];
            float[]?[] all = [l.SelfAttentionNormWeight, .. Attention(l.SelfAttention), l.FeedForwardNormWeight, .. FeedForward(l.FeedForward)];
            for (int j = 0; j < all.Length; j++) yield return ($"encoder.{i} #{j}", all[j]);
        }
        for (int i = 0; i < w.DecoderLayers.Length; i++)
        {
            var l = w.DecoderLayers[i];
            float[]?[] all = [l.SelfAttentionNormWeight, .. Attention(l.SelfAttention), l.CrossAttentionNormWeight, .. Attention(l.CrossAttention),
                l.FeedForwardNormWeight, .. FeedForward(l.FeedForward)];
            for (int j = 0; j < all.Length; j++) yield return ($"decoder.{i} #{j}", all[j]);
        }
    }

    private static void AssertSame(T5Weights<float> expected, T5Weights<float> actual)
    {
        Assert.That(actual.Config, Is.EqualTo(expected.Config));
        foreach (var ((name, want), (_, got)) in Tensors(expected).Zip(Tensors(actual)))
            Assert.That(got, Is.EqualTo(want), name);
    }

    /// <summary>Rewrites model.safetensors keeping the tensors <paramref name="keep"/> accepts, then lets <paramref name="extra"/> add more.</summary>
    private void Rewrite(Func<string, bool> keep, Action<SafeTensorWriter> extra)
    {
        string path = PathOf(CheckpointDirectory.SingleFileName);
        var writer = new SafeTensorWriter();
        using (var file = SafeTensorFile.Open(path))
        {
            foreach (var tensor in file.Tensors.Where(t => keep(t.Name)))
                writer.AddRaw(tensor.Name, tensor.DType, tensor.Shape.AsSpan(), file.GetBytes(tensor.Name));
        }
        extra(writer);
        writer.Save(path);
    }

    private void EditConfig(Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(PathOf("config.json")))!.AsObject();
        edit(json);
        File.WriteAllText(PathOf("config.json"), json.ToJsonString());
    }

    private CheckpointException LoadFails() => Assert.Throws<CheckpointException>(() => T5Checkpoint.Load<float>(Dir))!;

    [TestCase(false)]
    [TestCase(true)]
    public void RandomModelRoundTrips(bool gated)
    {
        var weights = T5Weights<float>.CreateRandom(Tiny(gated), seed: 5);
        Assert.That(weights.LanguageModelHead is null, Is.EqualTo(!gated), "v1.0 ties the head, v1.1 has its own");
        T5CheckpointWriter.Save(weights, Dir);
        AssertSame(weights, T5Checkpoint.Load<float>(Dir));
        Assert.That(ModelFamily.Detect(Dir), Is.EqualTo(ModelFamily.T5));
    }

    [Test]
    public void RandomWeightsAreDeterministic()
    {
        AssertSame(T5Weights<float>.CreateRandom(Tiny(true), seed: 3), T5Weights<float>.CreateRandom(Tiny(true), seed: 3));
        Assert.That(T5Weights<float>.CreateRandom(Tiny(true), seed: 4).TokenEmbedding, Is.Not.EqualTo(T5Weights<float>.CreateRandom(Tiny(true), seed: 3).TokenEmbedding));
    }

    [Test]
    public void HuggingFaceV10FixtureLoadsIgnoringCopiesAndDefaultsTheDecoderDepth()
    {
        var weights = T5Checkpoint.Load<float>(Path.Combine(T5Fixture.Root, "v1_0"));
        var config = weights.Config;
        Assert.That(config.Layers, Is.EqualTo(2));
        Assert.That(config.DecoderLayers, Is.EqualTo(2), "config.json has no num_decoder_layers: it defaults to num_layers");
        Assert.That(config.IsGated, Is.False);
        Assert.That(config.TiedEmbeddings, Is.True);
        Assert.That(weights.LanguageModelHead, Is.Null);
        Assert.That(config.MaxPositions, Is.EqualTo(512));
        var v11 = T5Checkpoint.Load<float>(Path.Combine(T5Fixture.Root, "v1_1")).Config;
        Assert.That((v11.DecoderLayers, v11.IsGated, v11.TiedEmbeddings, v11.AttentionSize), Is.EqualTo((3, true, false, 24)));
    }

    [Test]
    public void WrongShapeNamesTensorShapesAndFile()
    {
        T5CheckpointWriter.Save(T5Weights<float>.CreateRandom(Tiny(false), seed: 7), Dir);
        const string name = "decoder.block.0.layer.1.EncDecAttention.o.weight";
        Rewrite(n => n != name, w => w.Add(name, new float[48], [6, 8]));
        Assert.That(LoadFails().Message, Does.Contain("model.safetensors").And.Contain($"'{name}'").And.Contain("has shape [6, 8]").And.Contain("expects [8, 6]"));
    }

    [Test]
    public void MissingRelativeAttentionBiasIsExplained()
    {
        T5CheckpointWriter.Save(T5Weights<float>.CreateRandom(Tiny(false), seed: 8), Dir);
        Rewrite(n => n != "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", _ => { });
        Assert.That(LoadFails().Message, Does.Contain("no 'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'").And.Contain("block 0"));
    }

    [Test]
    public void UntiedWithoutLmHeadIsRejected()
    {
        T5CheckpointWriter.Save(T5Weights<float>.CreateRandom(Tiny(true), seed: 8), Dir);
        Rewrite(n => n != "lm_head.weight", _ => { });
        Assert.That(LoadFails().Message, Does.Contain("tie_word_embeddings=false").And.Contain("'lm_head.weight'"));
    }

    [Test]
    public void EmbedTokensStandsInForShared()
    {
        var weights = T5Weights<float>.CreateRandom(Tiny(false), seed: 9);
        T5CheckpointWriter.Save(weights, Dir);
        Rewrite(n => n != "shared.weight", w => w.Add("encoder.embed_tokens.weight", weights.TokenEmbedding, [11, 8]));
        Assert.That(T5Checkpoint.Load<float>(Dir).TokenEmbedding, Is.EqualTo(weights.TokenEmbedding));
        Rewrite(n => n != "encoder.embed_tokens.weight", _ => { });
        Assert.That(LoadFails().Message, Does.Contain("not a T5 checkpoint"));
    }

    [Test]
    public void GatedWeightsUnderAReluConfigAreRejected()
    {
        T5CheckpointWriter.Save(T5Weights<float>.CreateRandom(Tiny(true), seed: 10), Dir);
        EditConfig(c => { c["feed_forward_proj"] = "relu"; c.Remove("dense_act_fn"); c.Remove("is_gated_act"); c["tie_word_embeddings"] = false; });
        Assert.That(LoadFails().Message, Does.Contain("wi_0.weight").And.Contain("gated-gelu"));
    }

    [Test]
    public void MoreBlocksThanTheConfigIsRejected()
    {
        T5CheckpointWriter.Save(T5Weights<float>.CreateRandom(Tiny(false), seed: 11), Dir);
        EditConfig(c => c["num_layers"] = 1);
        Assert.That(LoadFails().Message, Does.Contain("encoder.block.1").And.Contain("num_layers=1"));
    }

    [TestCase("feed_forward_proj", "\"gated-silu\"", "feed_forward_proj 'gated-silu' is not supported")]
    [TestCase("d_model", null, "'d_model' is missing")]
    [TestCase("num_heads", "\"four\"", "'num_heads' is not an integer")]
    [TestCase("relative_attention_max_distance", "2", "relative_attention_max_distance 2")]
    [TestCase("decoder_start_token_id", "11", "decoder_start_token_id 11")]
    public void BadConfigsAreNamed(string field, string? value, string message)
    {
        T5CheckpointWriter.Save(T5Weights<float>.CreateRandom(Tiny(false), seed: 12), Dir);
        EditConfig(c =>
        {
            c.Remove(field);
            if (value is not null) c[field] = JsonNode.Parse(value);
        });
        Assert.That(LoadFails().Message, Does.Contain("config.json").And.Contain(message));
    }

    [TestCase("{\"model_type\": \"gpt2\"}", "gpt2")]
    [TestCase("{\"model_type\": \"t5\"}", "t5")]
    [TestCase("{\"architectures\": [\"T5ForConditionalGeneration\"]}", "t5")]
    [TestCase("{\"architectures\": [\"GPT2LMHeadModel\"]}", "gpt2")]
    [TestCase("{\"model_type\": \"llama\"}", "llama")]
    [TestCase("{\"architectures\": [\"LlamaForCausalLM\"]}", "llama")]
    public void FamilyIsDetected(string config, string family)
    {
        File.WriteAllText(PathOf("config.json"), config);
        Assert.That(ModelFamily.Detect(Dir).Name, Is.EqualTo(family));
    }

    [TestCase("{\"model_type\": \"bert\"}", "model_type 'bert' is not supported; SoftPrompt runs gpt2, t5 and llama models")]
    [TestCase("{\"architectures\": [\"BertModel\"]}", "architectures [BertModel]")]
    [TestCase("[1, 2]", "JSON object")]
    [TestCase("{", "cannot read config.json")]
    public void UnknownFamiliesAreNamed(string config, string message)
    {
        File.WriteAllText(PathOf("config.json"), config);
        var error = Assert.Throws<CheckpointException>(() => ModelFamily.Detect(Dir))!;
        Assert.That(error.Message, Does.Contain(message));
    }

    [Test]
    public void MissingConfigIsReported()
        => Assert.That(Assert.Throws<CheckpointException>(() => ModelFamily.Detect(Dir))!.Message, Does.Contain("no config.json"));
}

using SoftPrompt.Checkpoints;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Tests.Checkpoints;

public sealed class Gpt2CheckpointTests : CheckpointTestDirectory
{
    // Inner deliberately ≠ 4d and vocab ≠ positions so a swapped dimension cannot pass.
    private static readonly Gpt2Config Tiny = new(VocabSize: 11, MaxPositions: 7, Embedding: 8, Layers: 2, Heads: 2, Inner: 12,
        LayerNormEpsilon: 1e-5, Activation: "gelu_new");

    private static IEnumerable<(string Name, float[] Data)> Tensors(Gpt2Weights<float> w)
    {
        yield return ("wte", w.TokenEmbedding);
        yield return ("wpe", w.PositionEmbedding);
        yield return ("ln_f.weight", w.FinalNormWeight);
        yield return ("ln_f.bias", w.FinalNormBias);
        for (int i = 0; i < w.Layers.Length; i++)
        {
            var l = w.Layers[i];
            float[][] all = [l.Norm1Weight, l.Norm1Bias, l.QkvWeight, l.QkvBias, l.AttentionProjectionWeight, l.AttentionProjectionBias,
                l.Norm2Weight, l.Norm2Bias, l.FcWeight, l.FcBias, l.FcProjectionWeight, l.FcProjectionBias];
            for (int j = 0; j < all.Length; j++) yield return ($"h.{i} #{j}", all[j]);
        }
    }

    private static void AssertSame(Gpt2Weights<float> expected, Gpt2Weights<float> actual, Func<float, float>? stored = null)
    {
        Assert.That(actual.Config, Is.EqualTo(expected.Config));
        foreach (var ((name, want), (_, got)) in Tensors(expected).Zip(Tensors(actual)))
            Assert.That(got, Is.EqualTo(stored is null ? want : want.Select(stored).ToArray()), name);
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

    private CheckpointException LoadFails() => Assert.Throws<CheckpointException>(() => Gpt2Checkpoint.Load<float>(Dir))!;

    [TestCase(false)]
    [TestCase(true)]
    public void RandomModelRoundTrips(bool transformerPrefix)
    {
        var weights = Gpt2Weights<float>.CreateRandom(Tiny, seed: 5);
        Gpt2CheckpointWriter.Save(weights, Dir, transformerPrefix: transformerPrefix);
        using (var file = SafeTensorFile.Open(PathOf(CheckpointDirectory.SingleFileName)))
        {
            Assert.That(file.Contains("transformer.wte.weight"), Is.EqualTo(transformerPrefix));
            Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
        }
        AssertSame(weights, Gpt2Checkpoint.Load<float>(Dir));
    }

    [Test]
    public void LoadsIntoDouble()
    {
        var weights = Gpt2Weights<float>.CreateRandom(Tiny, seed: 1);
        Gpt2CheckpointWriter.Save(weights, Dir);
        var wide = Gpt2Checkpoint.Load<double>(Dir);
        Assert.That(wide.Layers[1].FcWeight, Is.EqualTo(weights.Layers[1].FcWeight.Select(x => (double)x).ToArray()));
        Assert.That(wide.TokenEmbedding, Is.EqualTo(weights.TokenEmbedding.Select(x => (double)x).ToArray()));
    }

    [Test]
    public void DoubleModelsRoundTrip()
    {
        var weights = Gpt2Weights<double>.CreateRandom(Tiny, seed: 2);
        Gpt2CheckpointWriter.Save(weights, Dir, SafeTensorDType.F64);
        var back = Gpt2Checkpoint.Load<double>(Dir);
        Assert.That(back.Layers[0].QkvWeight, Is.EqualTo(weights.Layers[0].QkvWeight));
        Assert.That(back.FinalNormBias, Is.EqualTo(weights.FinalNormBias));
    }

    [TestCase(SafeTensorDType.BF16)]
    [TestCase(SafeTensorDType.F16)]
    public void HalfPrecisionStorageConvertsToFloat(SafeTensorDType storeAs)
    {
        var weights = Gpt2Weights<float>.CreateRandom(Tiny, seed: 3);
        Gpt2CheckpointWriter.Save(weights, Dir, storeAs, transformerPrefix: true);
        Func<float, float> stored = storeAs == SafeTensorDType.F16
            ? x => (float)(Half)x
            : x => BitConverter.UInt32BitsToSingle((uint)ElementConversion.SingleToBFloat16(x) << 16);
        AssertSame(weights, Gpt2Checkpoint.Load<float>(Dir), stored);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void UntiedHeadAndAttentionFlagsRoundTrip(bool transformerPrefix)
    {
        var config = Tiny with { TiedEmbeddings = false, ScaleAttentionWeights = false, ScaleAttentionByInverseLayerIndex = true };
        var weights = Gpt2Weights<float>.CreateRandom(config, seed: 6);
        Gpt2CheckpointWriter.Save(weights, Dir, transformerPrefix: transformerPrefix);
        using (var file = SafeTensorFile.Open(PathOf(CheckpointDirectory.SingleFileName)))
            Assert.That(file.Contains("lm_head.weight"), "Hugging Face never prefixes the head");
        var loaded = Gpt2Checkpoint.Load<float>(Dir);
        Assert.That(loaded.Config, Is.EqualTo(config));
        Assert.That(loaded.LanguageModelHead, Is.EqualTo(weights.LanguageModelHead));
        Assert.That(loaded.Head, Is.Not.SameAs(loaded.TokenEmbedding));
        Assert.That(config.AttentionScale<double>(2), Is.EqualTo(1.0 / 3), "unscaled weights, third layer: 1/(2+1)");
        Assert.That(Tiny.AttentionScale<double>(2), Is.EqualTo(1 / Math.Sqrt(4)), "GPT-2's default: 1/√hs in every layer");
    }

    [Test]
    public void UntiedConfigWithoutAHeadIsRefused()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny with { TiedEmbeddings = false }, seed: 7), Dir);
        Rewrite(name => name != "lm_head.weight", _ => { });
        Assert.That(LoadFails().Message, Does.Contain("tie_word_embeddings=false").And.Contain("lm_head.weight"));
    }

    [Test]
    public void AttentionFlagsAndAnUntiedHeadChangeTheFingerprintDefaultsDoNot()
    {
        var table = new float[Tiny.VocabSize * Tiny.Embedding];
        string plain = SoftPrompt.Models.ModelFingerprint.Of(Tiny, table);
        Assert.That(SoftPrompt.Models.ModelFingerprint.Of(Tiny with { ScaleAttentionWeights = true, TiedEmbeddings = true }, table), Is.EqualTo(plain));
        var others = new[] { Tiny with { TiedEmbeddings = false }, Tiny with { ScaleAttentionWeights = false }, Tiny with { ScaleAttentionByInverseLayerIndex = true } }
            .Select(c => SoftPrompt.Models.ModelFingerprint.Of(c, table)).Append(plain).ToArray();
        Assert.That(others.Distinct().Count(), Is.EqualTo(4));
    }

    [Test]
    public void TiedHeadAndMaskBuffersAreIgnored()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 4), Dir);
        Rewrite(_ => true, w =>
        {
            w.Add("lm_head.weight", new float[11 * 8], [11, 8]);
            w.Add("h.0.attn.bias", new float[49], [1, 1, 7, 7]);
            w.Add("h.0.attn.masked_bias", [-1e4f], []);
        });
        Assert.That(Gpt2Checkpoint.Load<float>(Dir).Layers, Has.Length.EqualTo(2));
    }

    [Test]
    public void ShardedGpt2Loads()
    {
        var weights = Gpt2Weights<float>.CreateRandom(Tiny, seed: 6);
        Gpt2CheckpointWriter.Save(weights, Dir, transformerPrefix: true);
        string single = PathOf(CheckpointDirectory.SingleFileName);
        var map = new List<string>();
        var shards = new[] { new SafeTensorWriter(), new SafeTensorWriter() };
        using (var file = SafeTensorFile.Open(single))
        {
            foreach (var tensor in file.Tensors)
            {
                int shard = tensor.Name.Contains("h.1.") ? 1 : 0;
                shards[shard].AddRaw(tensor.Name, tensor.DType, tensor.Shape.AsSpan(), file.GetBytes(tensor.Name));
                map.Add($"\"{tensor.Name}\":\"model-0000{shard + 1}-of-00002.safetensors\"");
            }
        }
        File.Delete(single);
        shards[0].Save(PathOf("model-00001-of-00002.safetensors"));
        shards[1].Save(PathOf("model-00002-of-00002.safetensors"));
        File.WriteAllText(PathOf(CheckpointDirectory.IndexFileName), $"{{\"metadata\":{{}},\"weight_map\":{{{string.Join(",", map)}}}}}");
        AssertSame(weights, Gpt2Checkpoint.Load<float>(Dir));
    }

    [Test]
    public void WrongShapeNamesTensorShapesAndFile()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 7), Dir, transformerPrefix: true);
        Rewrite(name => name != "transformer.h.1.attn.c_attn.weight", w => w.Add("transformer.h.1.attn.c_attn.weight", new float[64], [8, 8]));
        Assert.That(LoadFails().Message, Does.Contain("model.safetensors").And.Contain("'transformer.h.1.attn.c_attn.weight'")
            .And.Contain("has shape [8, 8]").And.Contain("expects [8, 24]"));
    }

    [Test]
    public void TransposedMlpWeightIsRejected()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 7), Dir);
        Rewrite(name => name != "h.0.mlp.c_fc.weight", w => w.Add("h.0.mlp.c_fc.weight", new float[96], [12, 8]));
        Assert.That(LoadFails().Message, Does.Contain("'h.0.mlp.c_fc.weight'").And.Contain("[12, 8]").And.Contain("expects [8, 12]"));
    }

    [Test]
    public void MissingTensorIsNamed()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 8), Dir);
        Rewrite(name => name != "h.1.mlp.c_fc.bias", _ => { });
        Assert.That(LoadFails().Message, Does.Contain("no tensor named 'h.1.mlp.c_fc.bias'").And.Contain("nearest names present"));
    }

    [Test]
    public void IntegerStorageIsRejected()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 8), Dir);
        Rewrite(name => name != "ln_f.bias", w => w.Add("ln_f.bias", new int[8], [8]));
        Assert.That(LoadFails().Message, Does.Contain("'ln_f.bias'").And.Contain("I32"));
    }

    [Test]
    public void MoreBlocksThanTheConfigIsRejected()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 9), Dir);
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny with { Layers = 1 }, seed: 9), PathOf("one"));
        File.Copy(PathOf("one/config.json"), PathOf("config.json"), overwrite: true);
        Assert.That(LoadFails().Message, Does.Contain("h.1").And.Contain("n_layer=1"));
    }

    [Test]
    public void NotAGpt2Checkpoint()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 9), Dir);
        Rewrite(name => !name.StartsWith("wte", StringComparison.Ordinal), w => w.Add("model.embed_tokens.weight", [1f], [1]));
        Assert.That(LoadFails().Message, Does.Contain("not a GPT-2 checkpoint"));
    }

    [Test]
    public void MissingConfigIsReported()
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 9), Dir);
        File.Delete(PathOf("config.json"));
        Assert.That(LoadFails().Message, Does.Contain("config.json"));
    }

    [TestCase("n_layer", "3.5", "field 'n_layer' is not an integer; GPT-2 configs need it")]
    [TestCase("n_layer", "1000000000000", "field 'n_layer' is not an integer")]
    [TestCase("n_head", "0", "n_head is 0; it must be positive")]
    [TestCase("layer_norm_epsilon", "\"abc\"", "field 'layer_norm_epsilon' is not a number")]
    [TestCase("activation_function", "\"relu\"", "activation_function 'relu' is not supported")]
    public void BadConfigFieldsAreNamedOnOneLine(string field, string value, string message)
    {
        Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 9), Dir);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(PathOf("config.json")))!.AsObject();
        config[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(PathOf("config.json"), config.ToJsonString());
        string text = LoadFails().Message;
        Assert.That(text, Does.Contain(PathOf("config.json")).And.Contain(message).And.Not.Contain("\n").And.Not.Contain("Gpt2Config {"));
    }

    [Test]
    public void RandomWeightsAreDeterministicAndShaped()
    {
        var a = Gpt2Weights<float>.CreateRandom(Tiny, seed: 11);
        var b = Gpt2Weights<float>.CreateRandom(Tiny, seed: 11);
        var c = Gpt2Weights<float>.CreateRandom(Tiny, seed: 12);
        AssertSame(a, b);
        Assert.That(c.TokenEmbedding, Is.Not.EqualTo(a.TokenEmbedding));
        Assert.That(a.TokenEmbedding, Has.Length.EqualTo(11 * 8));
        Assert.That(a.Layers[1].FcProjectionWeight, Has.Length.EqualTo(12 * 8));
        Assert.That(a.Layers[0].QkvWeight, Is.Not.EqualTo(a.Layers[1].QkvWeight));
        Assert.That(a.Layers[0].Norm1Weight.Average(), Is.EqualTo(1).Within(0.05));
        Assert.That(a.Layers[0].Norm1Bias.Average(), Is.EqualTo(0).Within(0.05));
        var big = Gpt2Weights<float>.CreateRandom(Tiny with { VocabSize = 5000 }, seed: 1).TokenEmbedding;
        double mean = big.Average(), std = Math.Sqrt(big.Average(x => (x - mean) * (x - mean)));
        Assert.That(std, Is.EqualTo(0.02).Within(0.001));
    }

    [Test]
    public void LoadingCopiesEachTensorOnceFromTheMapping()
    {
        // Allocation ≈ the weights themselves: no staging buffer between the mapped file and the arrays.
        var config = Tiny with { VocabSize = 4096, Embedding = 64, Heads = 4, Inner = 256 };
        var weights = Gpt2Weights<float>.CreateRandom(config, seed: 13);
        Gpt2CheckpointWriter.Save(weights, Dir, SafeTensorDType.BF16);
        Gpt2Checkpoint.Load<float>(Dir); // warm up the JIT and the page cache
        long before = GC.GetAllocatedBytesForCurrentThread();
        Gpt2Checkpoint.Load<float>(Dir);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long weightBytes = config.ParameterCount * sizeof(float);
        Assert.That(allocated, Is.LessThan(weightBytes + 256 * 1024), $"weights are {weightBytes} bytes");
    }

    [Test]
    public void WriterRefusesToShadowAShardedCheckpoint()
    {
        File.WriteAllText(PathOf(CheckpointDirectory.IndexFileName), "{}");
        var error = Assert.Throws<CheckpointException>(() => Gpt2CheckpointWriter.Save(Gpt2Weights<float>.CreateRandom(Tiny, seed: 1), Dir))!;
        Assert.That(error.Message, Does.Contain(CheckpointDirectory.IndexFileName).And.Contain("empty directory"));
    }
}

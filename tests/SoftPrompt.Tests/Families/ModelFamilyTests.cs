using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Tests.Checkpoints;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Families;

/// <summary>The family descriptor: decided once from config.json or a recorded name, and the facts each family carries.</summary>
public sealed class ModelFamilyTests : CheckpointTestDirectory
{
    private static string Fixture(string family, string name) => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", family, name);

    [TestCase("{\"model_type\": \"gpt2\"}", "gpt2")]
    [TestCase("{\"model_type\": \"t5\"}", "t5")]
    [TestCase("{\"model_type\": \"llama\"}", "llama")]
    [TestCase("{\"model_type\": \"mistral\"}", "llama")]
    [TestCase("{\"model_type\": \"qwen2\"}", "llama")]
    [TestCase("{\"model_type\": \"mt5\"}", "t5")]
    [TestCase("{\"architectures\": [\"GPT2LMHeadModel\"]}", "gpt2")]
    [TestCase("{\"architectures\": [\"T5ForConditionalGeneration\"]}", "t5")]
    [TestCase("{\"architectures\": [\"LlamaForCausalLM\"]}", "llama")]
    [TestCase("{\"architectures\": [\"MistralForCausalLM\"]}", "llama")]
    [TestCase("{\"architectures\": [\"Qwen2ForCausalLM\"]}", "llama")]
    [TestCase("{\"architectures\": [\"MT5ForConditionalGeneration\"]}", "t5")]
    [TestCase("{\"architectures\": [\"BertModel\", \"T5EncoderModel\"]}", "t5")]
    [TestCase("{\"model_type\": \"t5\", \"architectures\": [\"GPT2LMHeadModel\"]}", "t5")]
    public void TheFamilyIsDetectedFromConfig(string config, string family)
    {
        File.WriteAllText(PathOf("config.json"), config);
        Assert.That(ModelFamily.Detect(Dir), Is.SameAs(ModelFamily.FromName(family)));
    }

    [Test]
    public void UnknownConfigsKeepTheirMessages()
    {
        string config = PathOf("config.json");
        File.WriteAllText(config, "{\"model_type\": \"qwen2_moe\"}");
        Assert.That(Assert.Throws<CheckpointException>(() => ModelFamily.Detect(Dir))!.Message,
            Is.EqualTo($"{config}: model_type 'qwen2_moe' is not supported; SoftPrompt runs gpt2, t5 and llama models."));
        File.WriteAllText(config, "{\"architectures\": [\"BertModel\"]}");
        Assert.That(Assert.Throws<CheckpointException>(() => ModelFamily.Detect(Dir))!.Message, Is.EqualTo(
            $"{config}: no model_type and architectures [BertModel], so the model family is unknown; SoftPrompt runs gpt2, t5 and llama models " +
            "(add \"model_type\": \"gpt2\", \"t5\" or \"llama\" if it is one of them)."));
    }

    [Test]
    public void EachFamilyRoundTripsThroughItsName()
    {
        Assert.That(ModelFamily.All.Select(f => f.Name), Is.EqualTo(new[] { "gpt2", "t5", "llama" }));
        Assert.That(ModelFamily.All, Is.EqualTo(new[] { ModelFamily.Gpt2, ModelFamily.T5, ModelFamily.Llama }));
        foreach (var family in ModelFamily.All)
        {
            Assert.That(ModelFamily.FromName(family.Name), Is.SameAs(family));
            Assert.That(family.ToString(), Is.EqualTo(family.Name));
        }
    }

    [TestCase("bert")]
    [TestCase("mistral")]
    [TestCase("GPT2")]
    [TestCase("")]
    public void AnUnknownNameIsAClearError(string name)
        => Assert.That(Assert.Throws<ArgumentException>(() => ModelFamily.FromName(name))!.Message,
            Is.EqualTo($"Unknown model family '{name}'; SoftPrompt runs gpt2, t5 and llama models."));

    [TestCase("gpt2", "tiny")]
    [TestCase("t5", "v1_1")]
    [TestCase("llama", "tiny")]
    public void ConfigsAndTablesNameTheFamilyThatReadThem(string name, string fixture)
    {
        string directory = Fixture(name, fixture);
        var family = ModelFamily.Detect(directory);
        Assert.That(family.Name, Is.EqualTo(name));
        Assert.That(family.LoadConfig(directory).Family, Is.SameAs(family));
        var table = TokenEmbeddingTable.Load(directory);
        Assert.That(table.Config.Family, Is.SameAs(family));
        Assert.That(table.Values, Has.Length.EqualTo(table.Config.VocabSize * table.Config.Embedding));
        Assert.That(family.Fingerprint(table.Config, table.Values), Is.EqualTo(table.Fingerprint));
        using var model = EngineFactory.Open(directory, "cpu");
        Assert.That(model.Family, Is.SameAs(family));
        Assert.That(model.Fingerprint, Is.EqualTo(table.Fingerprint));
    }

    [Test]
    public void ConventionsFollowTheArchitecture()
    {
        Assert.That(ModelFamily.All.Where(f => f.IsEncoderDecoder), Is.EqualTo(new[] { ModelFamily.T5 }));
        Assert.That(ModelFamily.T5.PeftTaskType, Is.EqualTo(PeftAdapter.Seq2SeqLm));
        Assert.That(ModelFamily.Gpt2.PeftTaskType, Is.EqualTo(PeftAdapter.CausalLm));
        Assert.That(ModelFamily.Llama.PeftTaskType, Is.EqualTo(PeftAdapter.CausalLm));
        string noTokenizerFiles = Path.Combine(TestContext.CurrentContext.WorkDirectory, "no-such-model");  // BOS then follows the family
        var options = ModelFamily.All.ToDictionary(f => f, f => TokenizeOptions.For(f, noTokenizerFiles, 50));
        Assert.That(options.Values.Select(o => o.MaxTokens), Is.All.EqualTo(50));
        Assert.That(options.Where(o => o.Value.AddBos).Select(o => o.Key), Is.EqualTo(new[] { ModelFamily.Llama }));
        Assert.That(options.Where(o => o.Value.InputEos).Select(o => o.Key), Is.EqualTo(new[] { ModelFamily.T5 }));
        Assert.That(ModelFamily.All.Select(f => f.DemoFolder), Is.EqualTo(new[] { "", "t5", "llama" }));
    }

    [Test]
    public void EveryShapeBelongsToOneFamily()
    {
        var names = ModelFamily.All.SelectMany(f => f.ShapeNames).ToList();
        Assert.That(names, Is.Unique.And.Contains("gpt2-small").And.Contains("t5-base").And.Contains("llama3.2-1b"));
        foreach (var family in ModelFamily.All)
            foreach (string name in family.ShapeNames)
            {
                Assert.That(ModelFamily.OfShape(name), Is.SameAs(family), name);
                Assert.That(family.Shape(name)!.Family, Is.SameAs(family), name);
                Assert.That(family.Describe(family.Shape(name)!)[0].Label, Is.EqualTo("family"));
            }
        Assert.That(ModelFamily.OfShape("gpt5"), Is.Null);
        Assert.That(ModelFamily.Gpt2.Shape("t5-base"), Is.Null);
        Assert.That(() => ModelFamily.Gpt2.OpenShape("t5-base", "cpu"), Throws.ArgumentException.With.Message.Contains("GPT-2 has no shape 't5-base'"));
        Assert.That(() => ModelFamily.Gpt2.Describe(ModelFamily.T5.Shape("t5-base")!),
            Throws.ArgumentException.With.Message.Contains("A T5 config given to the GPT-2 family"));
    }

    [Test]
    public void AnUnknownDeviceIsRefusedBeforeTheLoad()
    {
        File.WriteAllText(PathOf("config.json"), "{\"model_type\": \"gpt2\"}"); // no weights: a load would fail differently
        Assert.That(() => ModelFamily.Detect(Dir).Open(Dir, "tpu"), Throws.ArgumentException.With.Message.Contains("Unknown device 'tpu'"));
    }

    [Test]
    public void WeightsInMemoryAreRefusedAnUnknownDevice()
    {
        var weights = TestModels.Random<float>(TestModels.TinyConfig(), seed: 1);
        Assert.That(() => EngineFactory.Create(weights, "tpu", "tiny"), Throws.ArgumentException.With.Message.Contains("Unknown device 'tpu'"));
    }
}

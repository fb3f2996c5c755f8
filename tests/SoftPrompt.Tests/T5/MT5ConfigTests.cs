using System.Text.Json.Nodes;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.T5;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.T5;

/// <summary>
/// mT5 (model_type "mt5") opens in the T5 family as T5 v1.1's arithmetic; its config defaults are MT5Config's
/// (gated-gelu, untied head), not T5Config's. The arithmetic is checked against PyTorch by the parity tests (mt5/case-a).
/// </summary>
public sealed class MT5ConfigTests
{
    private static string Fixture => Path.Combine(T5Fixture.Root, "mt5");

    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void AnMT5CheckpointOpensAsT5V11WithASeq2SeqPeftTask(string device)
    {
        Assert.That(ModelFamily.Detect(Fixture), Is.SameAs(ModelFamily.T5));
        using var model = EngineFactory.Open(Fixture, device);
        var config = (T5Config)model.Config;
        Assert.That((config.IsGated, config.TiedEmbeddings, config.RescalesDecoderOutput), Is.EqualTo((true, false, false)));
        Assert.That(model.Family.PeftTaskType, Is.EqualTo(PeftAdapter.Seq2SeqLm));
    }

    [Test]
    public void WithoutFeedForwardAndTieKeysMT5TakesMT5ConfigsDefaultsAndT5TakesT5Configs()
    {
        string dir = Directory.CreateTempSubdirectory("softprompt-mt5-").FullName;
        try
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture, "config.json")))!.AsObject();
            config.Remove("feed_forward_proj");
            config.Remove("tie_word_embeddings");
            string path = Path.Combine(dir, "config.json");
            File.WriteAllText(path, config.ToJsonString());
            var mt5 = T5Config.Load(path);
            Assert.That((mt5.FeedForwardProjection, mt5.TiedEmbeddings), Is.EqualTo((T5Config.GatedGelu, false)));

            config["model_type"] = "t5";
            File.WriteAllText(path, config.ToJsonString());
            var t5 = T5Config.Load(path);
            Assert.That((t5.FeedForwardProjection, t5.TiedEmbeddings), Is.EqualTo((T5Config.Relu, true)));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

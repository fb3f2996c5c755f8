using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Models;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class PeftAdapterTests
{
    private string directory = null!;

    [SetUp]
    public void SetUp() => directory = Directory.CreateTempSubdirectory("softprompt-peft-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(directory, recursive: true);

    private static PromptFile Prompt(string init = "class-labels") => new(
        [.. Enumerable.Range(0, 5 * 8).Select(i => (float)Math.Sin(i))], 5, 8,
        new Dictionary<string, string> { [PromptFile.FingerprintKey] = "0123456789abcdef", [PromptFile.FamilyKey] = "gpt2", ["init"] = init, ["step"] = "40" });

    [Test]
    public void ExportWritesPeftsLayoutAndImportReadsItBack()
    {
        string adapter = Path.Combine(directory, "adapter");
        PeftAdapter.Export(Prompt(), adapter, new PeftExportSettings("gpt2", Layers: 12, Heads: 12, Init: InitSpec.ClassLabels));

        using (var weights = SafeTensorFile.Open(Path.Combine(adapter, PeftAdapter.WeightsFile)))
        {
            Assert.That(weights.TensorNames, Is.EqualTo(new[] { "prompt_embeddings" }));
            Assert.That(weights.GetInfo("prompt_embeddings").Shape, Is.EqualTo(new long[] { 5, 8 }));
            Assert.That(weights.GetInfo("prompt_embeddings").DType, Is.EqualTo(SafeTensorDType.F32));
            Assert.That(weights.Metadata["format"], Is.EqualTo("pt"));
        }
        string configText = File.ReadAllText(Path.Combine(adapter, PeftAdapter.ConfigFile));
        using var config = JsonDocument.Parse(configText);
        var root = config.RootElement;
        Assert.That(root.EnumerateObject().Select(p => p.Name), Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal), "sorted keys, as PEFT writes them");
        Assert.That(root.GetProperty("peft_type").GetString(), Is.EqualTo("PROMPT_TUNING"));
        Assert.That(root.GetProperty("task_type").GetString(), Is.EqualTo("CAUSAL_LM"));
        Assert.That(root.GetProperty("num_virtual_tokens").GetInt32(), Is.EqualTo(5));
        Assert.That(root.GetProperty("token_dim").GetInt32(), Is.EqualTo(8));
        Assert.That(root.GetProperty("num_transformer_submodules").GetInt32(), Is.EqualTo(1));
        Assert.That(root.GetProperty("num_attention_heads").GetInt32(), Is.EqualTo(12));
        Assert.That(root.GetProperty("num_layers").GetInt32(), Is.EqualTo(12));
        Assert.That(root.GetProperty("prompt_tuning_init").GetString(), Is.EqualTo("RANDOM"), "PEFT has no class-label init");
        Assert.That(root.GetProperty("base_model_name_or_path").GetString(), Is.EqualTo("gpt2"));
        Assert.That(root.GetProperty("inference_mode").GetBoolean(), Is.True);
        foreach (string key in new[] { "auto_mapping", "revision", "prompt_tuning_init_text", "tokenizer_name_or_path", "tokenizer_kwargs" })
            Assert.That(root.GetProperty(key).ValueKind, Is.EqualTo(JsonValueKind.Null), key);

        var back = PeftAdapter.Import(adapter);
        Assert.That(back.Values, Is.EqualTo(Prompt().Values));
        Assert.That((back.Length, back.Width), Is.EqualTo((5, 8)));
        Assert.That(back.Metadata[PromptFile.FingerprintKey], Is.EqualTo("0123456789abcdef"), "SoftPrompt's provenance survives the round trip");
        Assert.That(back.Metadata["init"], Is.EqualTo("class-labels"));
        Assert.That(back.Metadata["peft_base_model"], Is.EqualTo("gpt2"));
    }

    [Test]
    public void TextInitRecordsTheTextAndTokenizer()
    {
        string adapter = Path.Combine(directory, "text");
        PeftAdapter.Export(Prompt("text:Classify:"), adapter, new PeftExportSettings("gpt2", 2, 2, Init: InitSpec.Parse("text:Classify:")));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, PeftAdapter.ConfigFile)));
        Assert.That(config.RootElement.GetProperty("prompt_tuning_init").GetString(), Is.EqualTo("TEXT"));
        Assert.That(config.RootElement.GetProperty("prompt_tuning_init_text").GetString(), Is.EqualTo("Classify:"));
        Assert.That(config.RootElement.GetProperty("tokenizer_name_or_path").GetString(), Is.EqualTo("gpt2"), "PEFT rejects a TEXT config without one");
    }

    [Test]
    public void ImportReadsAnAdapterPeftSaved()
    {
        // As PEFT saves one: its own key order and spacing, no SoftPrompt metadata, SAMPLE_VOCAB init.
        string adapter = Path.Combine(directory, "peft");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, PeftAdapter.ConfigFile), """
            {"task_type": "CAUSAL_LM", "peft_type": "PROMPT_TUNING", "auto_mapping": null, "base_model_name_or_path": "gpt2", "revision": null,
             "inference_mode": true, "num_virtual_tokens": 3, "token_dim": 4, "num_transformer_submodules": 1, "num_attention_heads": 12,
             "num_layers": 12, "modules_to_save": null, "prompt_tuning_init": "SAMPLE_VOCAB", "prompt_tuning_init_text": null,
             "tokenizer_name_or_path": null, "tokenizer_kwargs": null, "peft_version": "0.17.1"}
            """);
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt";
        writer.Add("prompt_embeddings", new float[12], [3, 4], SafeTensorDType.BF16);
        writer.Save(Path.Combine(adapter, PeftAdapter.WeightsFile));
        var prompt = PeftAdapter.Import(adapter);
        Assert.That((prompt.Length, prompt.Width), Is.EqualTo((3, 4)));
        Assert.That(prompt.Metadata["init"], Is.EqualTo("sampled-vocab"));
        Assert.That(prompt.Metadata.ContainsKey(PromptFile.FingerprintKey), Is.False);
    }

    [TestCase("{\"peft_type\": \"LORA\"}", "only PROMPT_TUNING")]
    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"num_transformer_submodules\": 2}", "encoder-decoder")]
    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"num_virtual_tokens\": 7}", "num_virtual_tokens 7")]
    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"token_dim\": 768}", "token_dim 768")]
    public void ImportRejectsWhatIsNotAPromptOfThatShape(string config, string message)
    {
        string adapter = Path.Combine(directory, "bad");
        PeftAdapter.Export(Prompt(), adapter, new PeftExportSettings("gpt2", 2, 2));
        File.WriteAllText(Path.Combine(adapter, PeftAdapter.ConfigFile), config);
        var e = Assert.Throws<CheckpointException>(() => PeftAdapter.Import(adapter));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void ASeq2SeqExportKeepsOneSubmoduleSoThePromptReachesTheEncoderOnly()
    {
        string adapter = Path.Combine(directory, "t5");
        PeftAdapter.Export(Prompt(), adapter, new PeftExportSettings("t5-base", 12, 12, ModelFamily.T5.PeftTaskType));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, PeftAdapter.ConfigFile))))
        {
            Assert.That(config.RootElement.GetProperty("task_type").GetString(), Is.EqualTo("SEQ_2_SEQ_LM"));
            Assert.That(config.RootElement.GetProperty("num_transformer_submodules").GetInt32(), Is.EqualTo(1));
        }
        using (var weights = SafeTensorFile.Open(Path.Combine(adapter, PeftAdapter.WeightsFile)))
            Assert.That(weights.GetInfo("prompt_embeddings").Shape, Is.EqualTo(new long[] { 5, 8 }));
        var back = PeftAdapter.Import(adapter);
        Assert.That(back.Values, Is.EqualTo(Prompt().Values));
        Assert.That(back.Metadata.ContainsKey(PeftAdapter.DroppedDecoderRowsKey), Is.False);
        Assert.That(ModelFamily.Gpt2.PeftTaskType, Is.EqualTo(PeftAdapter.CausalLm));
    }

    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": \"SEQ_2_SEQ_LM\", \"num_transformer_submodules\": 2, \"num_virtual_tokens\": 5}", "num_virtual_tokens 5 × num_transformer_submodules 2")]
    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": \"SEQ_2_SEQ_LM\"}", "× num_transformer_submodules 2")]
    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": \"CAUSAL_LM\", \"num_transformer_submodules\": 2}", "with task_type CAUSAL_LM")]
    [TestCase("{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": \"SEQ_2_SEQ_LM\", \"num_transformer_submodules\": 3}", "num_transformer_submodules is 3")]
    public void ImportChecksRowsAgainstTheSubmoduleCount(string config, string message)
    {
        // The tensor holds 5 rows: not 2 × 5, and odd, so no two-submodule reading fits it.
        string adapter = Path.Combine(directory, "rows");
        PeftAdapter.Export(Prompt(), adapter, new PeftExportSettings("t5-base", 2, 2, PeftAdapter.Seq2SeqLm));
        File.WriteAllText(Path.Combine(adapter, PeftAdapter.ConfigFile), config);
        var e = Assert.Throws<CheckpointException>(() => PeftAdapter.Import(adapter));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void APickledAdapterIsNamed()
    {
        string adapter = Path.Combine(directory, "pickle");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, PeftAdapter.ConfigFile), "{\"peft_type\": \"PROMPT_TUNING\"}");
        File.WriteAllBytes(Path.Combine(adapter, "adapter_model.bin"), [0x80, 2]);
        var e = Assert.Throws<CheckpointException>(() => PeftAdapter.Import(adapter));
        Assert.That(e!.Message, Does.Contain("safe_serialization=True"));
    }
}

using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Cli;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.T5;

/// <summary>export/import (PEFT), neighbors, eval and train with text data on T5 checkpoints.</summary>
public sealed class T5CliVerbTests : CliScratch
{
    private static string Model => Path.Combine(T5Fixture.Root, "v1_1");
    private static string Gpt2Tiny => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "tiny");

    /// <summary>One SGD step on the fixture: a prompt file that records its T5 model.</summary>
    private string TrainedPrompt()
    {
        string output = In("prompt.safetensors");
        string sgd = Path.Combine(T5Fixture.Root, "sgd");
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", Model, "--data", Path.Combine(sgd, "train.jsonl"), "--optimizer", "sgd", "--lr", "0.5",
            "--steps", "1", "--batch-size", "5", "--init", Path.Combine(sgd, "init.safetensors"), "--out", output, "--device", "cpu", "--no-plot");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        return output;
    }

    [Test]
    public void ExportWritesASeq2SeqAdapterWhosePromptReachesTheEncoderOnly()
    {
        string prompt = TrainedPrompt();
        string adapter = In("adapter");
        var (code, stdout, stderr) = CliRunner.Run("export", "--prompt", prompt, "--format", "peft", "--out", adapter, "--base-model", "google/t5-v1_1-tiny");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("AutoModelForSeq2SeqLM").And.Contain("SEQ_2_SEQ_LM"));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, PeftAdapter.ConfigFile))))
        {
            var root = config.RootElement;
            Assert.That(root.GetProperty("task_type").GetString(), Is.EqualTo("SEQ_2_SEQ_LM"));
            Assert.That(root.GetProperty("num_transformer_submodules").GetInt32(), Is.EqualTo(1), "2 would make PEFT's forward() prompt the decoder too");
            Assert.That(root.GetProperty("num_virtual_tokens").GetInt32(), Is.EqualTo(4));
            Assert.That(root.GetProperty("token_dim").GetInt32(), Is.EqualTo(32));
            Assert.That(root.GetProperty("num_layers").GetInt32(), Is.EqualTo(2), "the encoder's layers, as PEFT reads num_layers from a T5 config");
            Assert.That(root.GetProperty("num_attention_heads").GetInt32(), Is.EqualTo(3));
        }
        using (var weights = SafeTensorFile.Open(Path.Combine(adapter, PeftAdapter.WeightsFile)))
            Assert.That(weights.GetInfo(PromptFile.TensorName).Shape, Is.EqualTo(new long[] { 4, 32 }));

        (code, _, stderr) = CliRunner.Run("import", "--peft", adapter, "--out", In("back.safetensors"), "--model", Model);
        Assert.That(code, Is.EqualTo(0), stderr);
        var back = PromptFile.Load(In("back.safetensors"));
        Assert.That(back.Values, Is.EqualTo(PromptFile.Load(prompt).Values));
        Assert.That(back.Metadata[PromptFile.FamilyKey], Is.EqualTo("t5"));
        Assert.That(back.Metadata[PeftAdapter.TaskTypeKey], Is.EqualTo("SEQ_2_SEQ_LM"));
    }

    /// <summary>As PEFT saves an adapter it trained on T5 with its defaults: 2 submodules, [2P, d] rows, no SoftPrompt metadata.</summary>
    private string PeftSavedSeq2SeqAdapter(float[] encoderRows, int length, int width, string submodulesField = "\"num_transformer_submodules\": 2, ")
    {
        string adapter = In("peft-t5");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, PeftAdapter.ConfigFile),
            $"{{\"task_type\": \"SEQ_2_SEQ_LM\", \"peft_type\": \"PROMPT_TUNING\", \"base_model_name_or_path\": \"t5-small\", \"inference_mode\": true, " +
            $"\"num_virtual_tokens\": {length}, \"token_dim\": {width}, {submodulesField}\"num_attention_heads\": 3, \"num_layers\": 2, " +
            "\"prompt_tuning_init\": \"RANDOM\", \"peft_version\": \"0.17.1\"}");
        var decoderRows = Enumerable.Repeat(9f, length * width);
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt";
        writer.Add(PromptFile.TensorName, [.. encoderRows, .. decoderRows], [2 * length, width]);
        writer.Save(Path.Combine(adapter, PeftAdapter.WeightsFile));
        return adapter;
    }

    [Test]
    public void ImportOfATwoSubmoduleAdapterKeepsTheEncoderRowsAndTheModelScoresThem()
    {
        var (_, shared) = T5Checkpoint.LoadTokenEmbedding<float>(Model);
        var encoderRows = shared.AsSpan(10 * 32, 3 * 32).ToArray();
        string adapter = PeftSavedSeq2SeqAdapter(encoderRows, 3, 32);
        var (code, stdout, stderr) = CliRunner.Run("import", "--peft", adapter, "--out", In("p.safetensors"), "--model", Model);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("dropped the 3 decoder rows"));
        var prompt = PromptFile.Load(In("p.safetensors"));
        Assert.That((prompt.Length, prompt.Width), Is.EqualTo((3, 32)));
        Assert.That(prompt.Values, Is.EqualTo(encoderRows));

        (code, stdout, stderr) = CliRunner.Run("eval", "--model", Model, "--prompt", In("p.safetensors"), "--data", Path.Combine(T5Fixture.Root, "sgd", "train.jsonl"), "--device", "cpu", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(ParseJson(stdout).GetProperty("metrics").GetProperty("loss").GetDouble(), Is.GreaterThan(0));
    }

    [Test]
    public void ASeq2SeqAdapterWithoutASubmoduleCountHasPeftsDefaultOfTwo()
    {
        string adapter = PeftSavedSeq2SeqAdapter(new float[2 * 32], 2, 32, submodulesField: "");
        var prompt = PeftAdapter.Import(adapter);
        Assert.That(prompt.Length, Is.EqualTo(2));
        Assert.That(prompt.Metadata[PeftAdapter.DroppedDecoderRowsKey], Is.EqualTo("2"));
    }

    [Test]
    public void ASeq2SeqAdapterDoesNotImportOntoADecoderOnlyModel()
    {
        string adapter = PeftSavedSeq2SeqAdapter(new float[2 * 32], 2, 32);
        var (code, _, stderr) = CliRunner.Run("import", "--peft", adapter, "--out", In("p.safetensors"), "--model", Gpt2Tiny);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("task_type is SEQ_2_SEQ_LM").And.Contain("gpt2 model (CAUSAL_LM)"));
    }

    [Test]
    public void NeighborsOfPromptVectorsCutFromTheSharedTableAreThoseTokens()
    {
        string model = T5TextModel.Create(Scratch);
        var (config, shared) = T5Checkpoint.LoadTokenEmbedding<float>(model);
        int[] ids = [T5TextModel.Hello, T5TextModel.The, 9];
        var values = ids.SelectMany(id => shared.AsSpan(id * config.Embedding, config.Embedding).ToArray()).ToArray();
        var fingerprint = ModelFingerprint.Of(T5Checkpoint.Load<float>(model));
        new PromptFile(values, ids.Length, config.Embedding, new Dictionary<string, string> { [PromptFile.FingerprintKey] = fingerprint }).Save(In("p.safetensors"));

        var (code, stdout, stderr) = CliRunner.Run("neighbors", "--model", model, "--prompt", In("p.safetensors"), "--k", "3", "--labels", "hello", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        var positions = ParseJson(stdout).EnumerateArray().ToList();
        Assert.That(positions.Select(p => p.GetProperty("nearest")[0].GetProperty("id").GetInt32()), Is.EqualTo(ids));
        Assert.That(positions[0].GetProperty("nearest")[0].GetProperty("token").GetString(), Is.EqualTo("▁hello"), "SentencePiece spelling");
        Assert.That(positions.Select(p => p.GetProperty("has_label").GetBoolean()), Is.EqualTo(new[] { true, false, false }));
        var spelled = positions.SelectMany(p => p.GetProperty("nearest").EnumerateArray()).ToDictionary(n => n.GetProperty("id").GetInt32(), n => n.GetProperty("token").GetString());
        Assert.That(spelled.Where(e => e.Key >= 16).Select(e => e.Value), Is.EqualTo(spelled.Where(e => e.Key >= 16).Select(e => $"<id {e.Key}>")),
            "the table has 61 rows, the tokenizer 16 pieces: rows past it are searched and named by id");

        (code, stdout, stderr) = CliRunner.Run("neighbors", "--model", model, "--prompt", In("p.safetensors"), "--k", "2");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("nearest of the 61 rows of the t5 embedding table").And.Contain("▁the (1.00)"));
    }

    [Test]
    public void NeighborsRefuseAPromptOfAnotherModel()
    {
        string prompt = TrainedPrompt();
        var (code, _, stderr) = CliRunner.Run("neighbors", "--model", Path.Combine(T5Fixture.Root, "v1_0"), "--prompt", prompt);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("not this model"));
    }

    [TestCase(false, TestName = "TextDataEndsTheEncoderInputWithEos(spiece.model)")]
    [TestCase(true, TestName = "TextDataEndsTheEncoderInputWithEos(tokenizer.json alone)")]
    public void TextDataEndsTheEncoderInputWithEos(bool tokenizerJson)
    {
        string model = T5TextModel.Create(Scratch, tokenizerJson);
        using var loaded = EngineFactory.Open(model, "cpu");
        var request = new DataRequest("text", null, "answer", null, "", SkipBadRows: false);
        var dataset = DataOptions.Load(T5TextModel.Data(Scratch), request, () => SoftPrompt.Text.TokenizerLoader.Load(model), loaded, promptLength: 4, TextWriter.Null);
        var first = dataset.Examples[0]; // "hello world" → "hello"
        Assert.That(first.Input, Is.EqualTo(new[] { T5TextModel.Hello, 6, 7, T5TextModel.Eos }), "▁hello ▁wor ld </s>: Hugging Face's T5 tokenizer appends </s>");
        Assert.That(first.Target, Is.EqualTo(new[] { T5TextModel.Hello, T5TextModel.Eos }));
    }

    [Test]
    public void TrainTokenizesTextDataWithTokenizerJsonAlone()
    {
        // A T5 repository without spiece.model: the CLI must find the Unigram tokenizer.json and train on text rows.
        string model = T5TextModel.Create(Scratch, tokenizerJson: true);
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", model, "--data", T5TextModel.Data(Scratch), "--input-column", "text",
            "--target-column", "label", "--labels", "pos=hello,neg=the", "--prompt-length", "3", "--steps", "1", "--batch-size", "4",
            "--out", In("p.safetensors"), "--device", "cpu", "--no-plot");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        Assert.That(File.Exists(In("p.safetensors")));
    }

    [Test]
    public void TrainAndEvalRunOnTextDataForGenerationAndClassification()
    {
        string model = T5TextModel.Create(Scratch);
        string data = T5TextModel.Data(Scratch);
        var (code, stdout, stderr) = CliRunner.Run("train", "--model", model, "--data", data, "--input-column", "text", "--target-column", "answer",
            "--prompt-length", "3", "--steps", "3", "--batch-size", "4", "--lr", "0.1", "--out", In("gen.safetensors"), "--device", "cpu", "--no-plot", "--json");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        (code, stdout, stderr) = CliRunner.Run("eval", "--model", model, "--prompt", In("gen.safetensors"), "--data", data, "--input-column", "text",
            "--target-column", "answer", "--device", "cpu", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        var generation = ParseJson(stdout);
        Assert.That(generation.GetProperty("task").GetString(), Is.EqualTo("generation"));
        Assert.That(generation.GetProperty("rows").GetInt32(), Is.EqualTo(8));

        string[] columns = ["--input-column", "text", "--target-column", "label", "--labels", "pos=hello,neg=the"];
        (code, stdout, stderr) = CliRunner.Run(["train", "--model", model, "--data", data, .. columns, "--init", "class-labels", "--prompt-length", "3",
            "--steps", "3", "--batch-size", "4", "--out", In("cls.safetensors"), "--device", "cpu", "--no-plot"]);
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        (code, stdout, stderr) = CliRunner.Run(["eval", "--model", model, "--prompt", In("cls.safetensors"), "--data", data, .. columns, "--device", "cpu", "--json"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var classification = ParseJson(stdout);
        Assert.That(classification.GetProperty("task").GetString(), Is.EqualTo("classification"));
        Assert.That(classification.GetProperty("labels").EnumerateArray().Select(l => l.GetString()), Is.EqualTo(new[] { "hello", "the" }));
        Assert.That(classification.GetProperty("metrics").GetProperty("accuracy").GetDouble(), Is.InRange(0.0, 1.0));
    }
}

using SoftPrompt.Checkpoints;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Checkpoints;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt convert`: PyTorch .bin directories to safetensors, atomically, never over existing files.</summary>
public sealed class ConvertCommandTests : CliScratch
{
    private static string Fixture(string name) => Path.Combine(TorchZipFileTests.Fixtures, name);

    [TestCase("t5-bin")]
    [TestCase("t5-sharded")]
    public void ConvertedDirectoryHoldsTheSameTensorsAndLoadsTheSameModel(string source)
    {
        string output = In("converted");
        var (code, stdout, stderr) = CliRunner.Run("convert", Fixture(source), "--out", output);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("wrote " + Path.Combine(output, CheckpointDirectory.SingleFileName)).And.Contain("54 tensors").And.Contain("copied config.json"));
        Assert.That(Directory.GetFiles(output).Select(Path.GetFileName), Is.EquivalentTo(new[] { "config.json", CheckpointDirectory.SingleFileName }));
        Assert.That(Directory.GetDirectories(Scratch), Is.EqualTo(new[] { output }), "no temp directory left behind");

        using (var converted = SafeTensorFile.Open(Path.Combine(output, CheckpointDirectory.SingleFileName)))
        using (var original = CheckpointDirectory.Open(Fixture(source)))
        {
            Assert.That(converted.Metadata["format"], Is.EqualTo("pt"), "transformers refuses safetensors without it");
            Assert.That(converted.TensorNames, Is.EquivalentTo(original.TensorNames));
            foreach (var tensor in converted.Tensors)
            {
                var info = original.GetInfo(tensor.Name);
                Assert.That((tensor.DType, tensor.ShapeText), Is.EqualTo((info.DType, info.ShapeText)), tensor.Name);
                Assert.That(converted.GetBytes(tensor.Name).SequenceEqual(original.FileOf(tensor.Name).GetBytes(tensor.Name)), Is.True, tensor.Name);
            }
        }
        var expected = T5Checkpoint.Load<float>(Fixture(source));
        var actual = T5Checkpoint.Load<float>(output);
        Assert.That(actual.TokenEmbedding, Is.EqualTo(expected.TokenEmbedding));
        Assert.That(actual.LanguageModelHead, Is.EqualTo(expected.LanguageModelHead));
        Assert.That(actual.EncoderLayers[0].SelfAttention.Key, Is.EqualTo(expected.EncoderLayers[0].SelfAttention.Key));
        Assert.That(actual.DecoderFinalNormWeight, Is.EqualTo(expected.DecoderFinalNormWeight));
    }

    [Test]
    public void TokenizerAndOtherSmallFilesAreCopiedButNotOtherWeights()
    {
        string source = In("model");
        Directory.CreateDirectory(source);
        foreach (string file in Directory.GetFiles(Fixture("t5-bin"))) File.Copy(file, Path.Combine(source, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(source, "tokenizer.json"), "{}");
        File.WriteAllText(Path.Combine(source, "spiece.model"), "sp");
        File.WriteAllBytes(Path.Combine(source, "tf_model.h5"), [1, 2]);
        var (code, _, stderr) = CliRunner.Run("convert", source, "--out", In("out"));
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(Directory.GetFiles(In("out")).Select(Path.GetFileName),
            Is.EquivalentTo(new[] { "config.json", "tokenizer.json", "spiece.model", CheckpointDirectory.SingleFileName }));
    }

    [Test]
    public void RefusesAnExistingNonEmptyOutputAndLeavesItAlone()
    {
        string output = In("taken");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "config.json"), "mine");
        var (code, _, stderr) = CliRunner.Run("convert", Fixture("t5-bin"), "--out", output);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("error: ").And.Contain("already exists and is not empty").And.Contain("never overwrites"));
        Assert.That(File.ReadAllText(Path.Combine(output, "config.json")), Is.EqualTo("mine"));
        Assert.That(Directory.GetFiles(output), Has.Length.EqualTo(1));
    }

    [Test]
    public void RefusesToConvertADirectoryIntoItself()
    {
        string source = In("model");
        Directory.CreateDirectory(source);
        foreach (string file in Directory.GetFiles(Fixture("t5-bin"))) File.Copy(file, Path.Combine(source, Path.GetFileName(file)));
        var before = File.ReadAllBytes(Path.Combine(source, CheckpointDirectory.TorchFileName));
        var (code, _, stderr) = CliRunner.Run("convert", source, "--out", source + "/");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("is the model directory being converted"));
        Assert.That(Directory.GetFiles(source).Select(Path.GetFileName), Is.EquivalentTo(new[] { "config.json", CheckpointDirectory.TorchFileName }));
        Assert.That(File.ReadAllBytes(Path.Combine(source, CheckpointDirectory.TorchFileName)), Is.EqualTo(before));
    }

    [Test]
    public void UnreadableInputFailsInOneLineAndWritesNothing()
    {
        string source = In("legacy");
        Directory.CreateDirectory(source);
        File.Copy(Fixture("legacy.bin"), Path.Combine(source, CheckpointDirectory.TorchFileName));
        var (code, _, stderr) = CliRunner.Run("convert", source, "--out", In("out"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(stderr, Does.Contain("legacy PyTorch checkpoint"));
        Assert.That(Directory.Exists(In("out")), Is.False);
        Assert.That(Directory.GetDirectories(Scratch), Is.EqualTo(new[] { source }), "no temp directory left behind");
    }
}

using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Checkpoints;

public sealed class CheckpointDirectoryTests : CheckpointTestDirectory
{
    private void WriteShard(string name, params (string Tensor, float Value)[] tensors)
    {
        var writer = new SafeTensorWriter();
        foreach (var (tensor, value) in tensors) writer.Add(tensor, [value, value + 1], [2]);
        writer.Save(PathOf(name));
    }

    private void WriteIndex(params (string Tensor, string Shard)[] map)
    {
        var entries = string.Join(",", map.Select(e => $"\"{e.Tensor}\":\"{e.Shard}\""));
        File.WriteAllText(PathOf(CheckpointDirectory.IndexFileName), $"{{\"metadata\":{{\"total_size\":24}},\"weight_map\":{{{entries}}}}}");
    }

    private CheckpointException OpenFails() => Assert.Throws<CheckpointException>(() => CheckpointDirectory.Open(Dir).Dispose())!;

    [Test]
    public void SingleFile()
    {
        WriteShard(CheckpointDirectory.SingleFileName, ("a", 1f), ("b", 3f));
        using var checkpoint = CheckpointDirectory.Open(Dir);
        Assert.That(checkpoint.TensorNames, Is.EquivalentTo(new[] { "a", "b" }));
        var values = new float[2];
        checkpoint.Read<float>("b", values);
        Assert.That(values, Is.EqualTo(new[] { 3f, 4f }));
    }

    [Test]
    public void ShardedIndexPresentsOneLookup()
    {
        WriteShard("model-00001-of-00002.safetensors", ("a", 1f), ("b", 3f), ("unlisted", 9f));
        WriteShard("model-00002-of-00002.safetensors", ("c", 5f));
        WriteIndex(("a", "model-00001-of-00002.safetensors"), ("b", "model-00001-of-00002.safetensors"), ("c", "model-00002-of-00002.safetensors"));
        using var checkpoint = CheckpointDirectory.Open(Dir);
        Assert.That(checkpoint.Files, Has.Count.EqualTo(2));
        Assert.That(checkpoint.TensorNames, Is.EquivalentTo(new[] { "a", "b", "c" }));
        Assert.That(checkpoint.Contains("unlisted"), Is.False, "the index is authoritative");
        Assert.That(Path.GetFileName(checkpoint.FileOf("c").Path), Is.EqualTo("model-00002-of-00002.safetensors"));
        Assert.That(Path.GetFileName(checkpoint.GetInfo("a").FilePath), Is.EqualTo("model-00001-of-00002.safetensors"));
        var values = new double[2];
        checkpoint.Read<double>("c", values);
        Assert.That(values, Is.EqualTo(new[] { 5d, 6d }));
    }

    [Test]
    public void IndexTakesPrecedenceOverASingleFile()
    {
        WriteShard(CheckpointDirectory.SingleFileName, ("stale", 0f));
        WriteShard("shard.safetensors", ("fresh", 1f));
        WriteIndex(("fresh", "shard.safetensors"));
        using var checkpoint = CheckpointDirectory.Open(Dir);
        Assert.That(checkpoint.TensorNames, Is.EqualTo(new[] { "fresh" }));
    }

    [Test]
    public void MissingShardIsNamed()
    {
        WriteShard("model-00001-of-00002.safetensors", ("a", 1f));
        WriteIndex(("a", "model-00001-of-00002.safetensors"), ("c", "model-00002-of-00002.safetensors"), ("d", "model-00002-of-00002.safetensors"));
        Assert.That(OpenFails().Message, Does.Contain(CheckpointDirectory.IndexFileName)
            .And.Contain("shard 'model-00002-of-00002.safetensors'").And.Contain("2 tensors").And.Contain("missing"));
    }

    [Test]
    public void TensorListedButAbsentFromItsShard()
    {
        WriteShard("s1.safetensors", ("a", 1f));
        WriteShard("s2.safetensors", ("b", 1f));
        WriteIndex(("a", "s1.safetensors"), ("b", "s1.safetensors"));
        Assert.That(OpenFails().Message, Does.Contain("'b'").And.Contain("'s1.safetensors'").And.Contain("does not hold it"));
    }

    [Test]
    public void IndexMayNotPointOutsideTheDirectory()
    {
        WriteIndex(("a", "../elsewhere.safetensors"));
        Assert.That(OpenFails().Message, Does.Contain("'a'").And.Contain("same directory"));
    }

    [Test]
    public void IndexWithoutWeightMap()
    {
        File.WriteAllText(PathOf(CheckpointDirectory.IndexFileName), "{\"metadata\":{}}");
        Assert.That(OpenFails().Message, Does.Contain("weight_map"));
    }

    [Test]
    public void CorruptShardIsNamed()
    {
        File.WriteAllBytes(PathOf("s1.safetensors"), [1, 2, 3]);
        WriteIndex(("a", "s1.safetensors"));
        Assert.That(OpenFails().Message, Does.Contain("s1.safetensors").And.Contain("too short"));
    }

    [Test]
    public void LegacyPyTorchPicklesAreRefusedWithAResaveRecipe()
    {
        File.WriteAllBytes(PathOf(CheckpointDirectory.TorchFileName), [0x80, 2, 0x8a, 0x0a]);
        var message = OpenFails().Message;
        Assert.That(message, Does.Contain("pytorch_model.bin").And.Contain("legacy").And.Contain("torch.save(torch.load(path), path)"));
    }

    [Test]
    public void EmptyDirectorySaysWhatIsMissing() =>
        Assert.That(OpenFails().Message, Does.Contain("no model.safetensors, pytorch_model.bin").And.Contain("download").And.Contain("'*.bin'"));

    [Test]
    public void PyTorchFilesUnderOtherNamesAreNamed()
    {
        File.WriteAllBytes(PathOf("pytorch_model-00001-of-00002.bin"), [0x50, 0x4b]);
        Assert.That(OpenFails().Message, Does.Contain("pytorch_model-00001-of-00002.bin").And.Contain(CheckpointDirectory.TorchIndexFileName));
    }

    /// <summary>Issue 13 item 5: a T5 converted with a causal-LM class loses its decoder, so the recipe names the config's own class.</summary>
    [Test]
    public void TensorFlowOnlyDirectoriesGetARecipeWithTheModelsOwnClass()
    {
        File.WriteAllBytes(PathOf("tf_model.h5"), [1]);
        File.WriteAllText(PathOf("config.json"), "{\"architectures\": [\"T5ForConditionalGeneration\"]}");
        string message = OpenFails().Message;
        Assert.That(message, Does.Contain("TensorFlow").And.Contain("T5ForConditionalGeneration.from_pretrained(").And.Contain("from_tf=True"));
        Assert.That(message, Does.Not.Contain("AutoModelForCausalLM"));
    }

    [Test]
    public void FlaxOnlyDirectoriesWithoutArchitecturesNameNoClass()
    {
        File.WriteAllBytes(PathOf("flax_model.msgpack"), [1]);
        string message = OpenFails().Message;
        Assert.That(message, Does.Contain("Flax").And.Contain("from_flax=True").And.Contain("<ModelClass>"));
        Assert.That(message, Does.Not.Contain("AutoModel"));
    }

    [Test]
    public void OtherSafetensorsNamesAreMentioned()
    {
        WriteShard("gpt2.safetensors", ("a", 1f));
        Assert.That(OpenFails().Message, Does.Contain("gpt2.safetensors").And.Contain("rename"));
    }

    [Test]
    public void MissingDirectory()
    {
        var error = Assert.Throws<CheckpointException>(() => CheckpointDirectory.Open(PathOf("nope")))!;
        Assert.That(error.Message, Does.Contain("nope").And.Contain("not found"));
    }

    [Test]
    public void MissingTensorNamesTheNearest()
    {
        WriteShard(CheckpointDirectory.SingleFileName, ("ln_f.weight", 1f), ("ln_f.bias", 1f));
        using var checkpoint = CheckpointDirectory.Open(Dir);
        var error = Assert.Throws<CheckpointException>(() => checkpoint.GetInfo("ln_f.weights"))!;
        Assert.That(error.Message, Does.Contain("'ln_f.weights'").And.Contain("nearest names present: 'ln_f.weight'"));
    }
}

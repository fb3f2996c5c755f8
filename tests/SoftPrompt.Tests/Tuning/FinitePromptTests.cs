using SoftPrompt.Checkpoints;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>A prompt holding NaN or infinity is never written and never accepted: the file, tensor and value are named.</summary>
public sealed class FinitePromptTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("softprompt-finite-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static PromptFile Prompt(float bad, int at) =>
        new(Enumerable.Range(0, 12).Select(i => i == at ? bad : 0.1f * i).ToArray(), 3, 4, new Dictionary<string, string>());

    [TestCase(float.NaN, 6, "NaN at index 6 (vector 1, channel 2)")]
    [TestCase(float.PositiveInfinity, 11, "Infinity at index 11 (vector 2, channel 3)")]
    public void SavingANonFinitePromptIsRefusedAndWritesNothing(float bad, int at, string described)
    {
        string path = Path.Combine(_dir, "p.safetensors");
        var e = Assert.Throws<CheckpointException>(() => Prompt(bad, at).Save(path))!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("prompt_embeddings").And.Contain(described));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void LoadingANonFinitePromptNamesTheFileAndTheValue()
    {
        string path = Path.Combine(_dir, "p.safetensors");
        var writer = new SafeTensorWriter();
        writer.Add(PromptFile.TensorName, Prompt(float.NegativeInfinity, 5).Values, [3, 4]);
        writer.Save(path);
        var e = Assert.Throws<CheckpointException>(() => PromptFile.Load(path))!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("-Infinity at index 5 (vector 1, channel 1)").And.Contain("cannot be used"));
        Assert.That(PromptFile.Load(WriteFinite()).Values, Has.Length.EqualTo(12), "finite prompts load as before");
    }

    private string WriteFinite()
    {
        string path = Path.Combine(_dir, "ok.safetensors");
        Prompt(0.5f, 0).Save(path);
        return path;
    }
}

using SoftPrompt.Cli.Commands;
using SoftPrompt.Models;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt neighbors` on the demo models: symbol vocabularies, every family, label flags.</summary>
public sealed class NeighborsCommandTests : CliScratch
{
    [TestCase("gpt2", 23)]
    [TestCase("t5", 24)]
    [TestCase("llama", 23)]
    public void TheDemosReferencePromptsHaveNamedNeighbours(string family, int vocabulary)
    {
        string demo = DemoCommand.DirectoryOf(family);
        var (code, stdout, stderr) = CliRunner.Run("neighbors", "--model", Path.Combine(demo, "model"), "--prompt", Path.Combine(demo, "prompts", "copy.safetensors"),
            "--k", "3", "--labels", "<copy>,<sort>");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain($"4 vectors × 64; 3 nearest of the {vocabulary} rows of the {family} embedding table"));
        Assert.That(stdout, Does.Contain("cohesion").And.Contain("mean cohesion"));
        Assert.That(stdout, Does.Not.Contain("<id "), "every neighbour is spelled by the symbol vocabulary");

        var (json, jsonOut, jsonError) = CliRunner.Run("neighbors", "--model", Path.Combine(demo, "model"), "--prompt", Path.Combine(demo, "prompts", "copy.safetensors"), "--json");
        Assert.That(json, Is.EqualTo(0), jsonError);
        Assert.That(ParseJson(jsonOut).GetArrayLength(), Is.EqualTo(4));
    }

    [Test]
    public void APromptOfTheOtherDemoIsRefused()
    {
        string gpt2 = Path.Combine(DemoCommand.DirectoryOf("gpt2"), "model");
        var reference = PromptFile.Load(Path.Combine(DemoCommand.DirectoryOf("gpt2"), "prompts", "copy.safetensors"));
        var stamped = new Dictionary<string, string> { [PromptFile.FingerprintKey] = TokenEmbeddingTable.Load(gpt2).Fingerprint };
        new PromptFile(reference.Values, reference.Length, reference.Width, stamped).Save(In("gpt2-copy.safetensors"));

        var (code, _, stderr) = CliRunner.Run("neighbors", "--model", Path.Combine(DemoCommand.DirectoryOf("t5"), "model"), "--prompt", In("gpt2-copy.safetensors"));
        Assert.That(code, Is.EqualTo(1), "both are 64 wide: the fingerprint check refuses it");
        Assert.That(stderr, Does.Contain("not this model"));
    }
}

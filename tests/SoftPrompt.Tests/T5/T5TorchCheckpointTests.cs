using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Checkpoints;

namespace SoftPrompt.Tests.T5;

/// <summary>
/// A T5 directory holding only PyTorch files (fixtures/torch, tools/reference/make_bin_checkpoint.py) loads exactly as
/// its safetensors twin: the same logits, loss and prompt gradient on the CPU engine, bit for bit. The fixture's bf16
/// embedding (shared by three names), f16 head, f64 norm and q/k/v slices of one fused storage all feed those numbers.
/// </summary>
public sealed class T5TorchCheckpointTests : CheckpointTestDirectory
{
    private static string Fixture(string name) => Path.Combine(TorchZipFileTests.Fixtures, name);

    private const int PromptLength = 3, PromptCount = 2, Width = 16;
    private static readonly int[][] Inputs = [[5, 9, 2, 31], [], [7, 7, 1]];
    private static readonly int[][] Targets = [[3, 4], [8, 2, 6], [30]];
    private static readonly int[] PromptIndex = [1, 0, 1];

    /// <summary>Logits, loss and prompt gradient of three rows (one with no input) under two random prompts.</summary>
    private static (float[] Logits, float Loss, float[] Gradient) Run(string modelDirectory)
    {
        using var engine = new CpuT5Engine<float>(T5Checkpoint.Load<float>(modelDirectory));
        var random = new Random(7);
        var prompts = Enumerable.Range(0, PromptCount * PromptLength * Width).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        engine.LoadPrompts(prompts.AsSpan(), PromptCount, PromptLength);
        int longest = Inputs.Zip(Targets, (i, t) => i.Length + t.Length).Max();
        var batch = new TokenBatch(Inputs.Length, longest, PromptLength);
        batch.Reset(longest);
        for (int r = 0; r < Inputs.Length; r++) batch.AddRow(Inputs[r], Targets[r], PromptIndex[r]);
        var logits = new float[Inputs.Length * Targets.Max(t => t.Length) * engine.VocabSize];
        engine.Logits(batch, logits);
        float loss = engine.ForwardBackward(batch);
        var gradient = new float[prompts.Length];
        engine.ReadPromptGradient(gradient);
        return (logits, loss, gradient);
    }

    [TestCase("t5-bin")]
    [TestCase("t5-sharded")]
    public void PyTorchDirectoryEqualsItsSafetensorsTwinExactly(string directory)
    {
        var expected = Run(Fixture("t5-safetensors"));
        var actual = Run(Fixture(directory));
        Assert.That(expected.Logits.Any(v => v != 0) && float.IsFinite(expected.Loss), Is.True, "the twin computes something");
        Assert.That(actual.Logits, Is.EqualTo(expected.Logits), "logits");
        Assert.That(actual.Loss, Is.EqualTo(expected.Loss), "loss");
        Assert.That(actual.Gradient, Is.EqualTo(expected.Gradient), "prompt gradient");
    }

    [Test]
    public void ShardedIndexPresentsEveryTensorFromItsShard()
    {
        using var checkpoint = CheckpointDirectory.Open(Fixture("t5-sharded"));
        Assert.That(checkpoint.Files.Select(f => Path.GetFileName(f.Path)), Is.EqualTo(new[] { "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin" }));
        Assert.That(checkpoint.Files, Is.All.TypeOf<TorchZipFile>());
        using var single = CheckpointDirectory.Open(Fixture("t5-bin"));
        Assert.That(checkpoint.TensorNames, Is.EquivalentTo(single.TensorNames));
        Assert.That(Path.GetFileName(checkpoint.GetInfo("lm_head.weight").FilePath), Is.EqualTo("pytorch_model-00002-of-00002.bin"));
    }

    [Test]
    public void SafetensorsWinOverPyTorchFilesInOneDirectory()
    {
        // The .bin here is the legacy file, which cannot be read: loading succeeds only if the safetensors are chosen.
        foreach (string file in new[] { "config.json", CheckpointDirectory.SingleFileName })
            File.Copy(Path.Combine(Fixture("t5-safetensors"), file), PathOf(file));
        File.Copy(Fixture("legacy.bin"), PathOf(CheckpointDirectory.TorchFileName));
        using (var checkpoint = CheckpointDirectory.Open(Dir))
            Assert.That(checkpoint.Files.Single(), Is.TypeOf<SafeTensorFile>());
        Assert.That(T5Checkpoint.Load<float>(Dir).Config.Embedding, Is.EqualTo(Width));
    }
}

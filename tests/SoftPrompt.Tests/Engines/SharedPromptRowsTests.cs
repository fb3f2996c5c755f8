using SoftPrompt.Engines;
using SoftPrompt.Tests.Emulation;
using SoftPrompt.Tests.Llama;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// The CUDA GPT-2 and Llama engines compute each prompt's positions once per batch (<see cref="SharedPromptRows"/>); the
/// CPU engines compute every row in full. They must agree on batches that stress the sharing: several rows with empty inputs
/// predicting from one shared last prompt position, a loaded prompt no row uses, prompts of different lengths.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class SharedPromptRowsTests(DeviceKind kind)
{
    private static readonly PromptLayout Layout = new([3, 2, 4]);

    private static TokenBatch Batch()
    {
        var batch = new TokenBatch(6, 6, Layout);
        batch.Reset(5);
        batch.AddRow([], [4, 9], 0);          // empty input: predicts from prompt 0's last position ...
        batch.AddRow([1, 5, 7], [2, 9], 2);
        batch.AddRow([], [6], 0);             // ... as does this one, and
        batch.AddRow([3, 3], [6, 2, 1], 0);
        batch.AddRow([], [8, 8, 8], 0);       // this one: three gradients meet on one shared row
        batch.AddRow([10], [1], 2);           // prompt 1 is loaded but unused
        return batch;
    }

    private static TokenBatch UsesPromptOne()
    {
        var batch = new TokenBatch(2, 4, Layout);
        batch.Reset(3);
        batch.AddRow([2], [7, 7], 1);
        batch.AddRow([], [3], 0);
        return batch;
    }

    [Test]
    public void TheMapsHoldEachUsedPromptOnce()
    {
        var batch = Batch();
        var maps = new SharedPromptRows(6, 6 * 9, Layout);
        var targets = Enumerable.Range(0, batch.Rows * batch.SequenceLength).Where(p => batch.Targets[p] != TokenBatch.Ignore).ToArray();
        maps.Build(batch, targets);
        Assert.That(maps.PromptRows, Is.EqualTo(3 + 4), "prompts 0 and 2, not the unused prompt 1");
        Assert.That(maps.Shared, Is.EqualTo(7 + 6 * 5));
        Assert.That(maps.Full, Is.EqualTo(6 * 9));
        int lastOfPrompt0 = 2;
        Assert.That(new[] { 0, 2, 4 }.Select(b => maps.FullToShared[b * 9 + 2]), Has.All.EqualTo(lastOfPrompt0), "rows 0, 2, 4 read prompt 0's last position from one row");
        Assert.That(maps.FullToSharedOrZero[2 * 9 + 2], Is.EqualTo(maps.Shared), "a repeated prompt position feeds attention's gradient nothing");
        Assert.That(maps.FullToSharedOrZero[0 * 9 + 2], Is.EqualTo(lastOfPrompt0));
        Assert.That(maps.TargetStarts[lastOfPrompt0 + 1] - maps.TargetStarts[lastOfPrompt0], Is.EqualTo(3), "three first targets meet on it");
        Assert.That(maps.PromptStarts[3 + 2] - maps.PromptStarts[3], Is.Zero, "the unused prompt's rows take nothing");
    }

    [Category("Slow")]
    [TestCase("gpt2", false)]
    [TestCase("gpt2", true)]
    [TestCase("llama", false)]
    [TestCase("llama", true)]
    public void TheSharedEngineMatchesTheFullCpuEngine(string family, bool accumulate)
    {
        int width, vocab;
        IPromptEngine cpu, cuda;
        if (family == "gpt2")
        {
            var config = TestModels.TinyConfig();
            var weights = TestModels.Random<float>(config, seed: 5);
            (width, vocab) = (config.Embedding, config.VocabSize);
            cpu = new CpuGpt2Engine<float>(weights);
            cuda = new CudaGpt2Engine(TestDevices.Open(kind), weights, ownsDevice: true);
        }
        else
        {
            var config = LlamaTestModels.TinyConfig();
            var weights = LlamaTestModels.Random<float>(config, seed: 5);
            (width, vocab) = (config.Embedding, config.VocabSize);
            cpu = new CpuLlamaEngine<float>(weights);
            cuda = new CudaLlamaEngine(TestDevices.Open(kind), weights, ownsDevice: true);
        }
        using var cpuEngine = cpu;
        using var cudaEngine = cuda;
        var prompts = TestModels.RandomPrompts<float>(Layout.ValueCount(width), seed: 6);
        var batch = Batch();
        var results = new List<(float Loss, float[] Gradient, float[] Scores, float[] Next, int[] Tokens)>();
        foreach (IPromptEngine engine in new IPromptEngine[] { cpu, cuda })
        {
            engine.LoadPrompts(prompts, Layout);
            if (accumulate) engine.ForwardBackward(UsesPromptOne());  // the unused prompt's rows must keep this gradient
            float loss = engine.ForwardBackward(batch, accumulate, gradientWeight: 0.5f);
            var gradient = new float[prompts.Length];
            engine.ReadPromptGradient(gradient);
            var scores = new float[batch.Rows];
            engine.ScoreRows(batch, scores);
            var next = new float[batch.Rows * vocab];
            engine.NextTokenLogits(batch, next);
            var tokens = new int[batch.Rows];
            engine.NextTokens(batch, tokens);
            results.Add((loss, gradient, scores, next, tokens));
        }
        var (expected, actual) = (results[0], results[1]);
        Assert.That(actual.Loss, Is.EqualTo(expected.Loss).Within(1e-5f * expected.Loss));
        Assert.That(Gpt2Fixture.RelativeError<float>(actual.Gradient, expected.Gradient), Is.LessThan(1e-4), "prompt gradient");
        Assert.That(actual.Gradient.AsSpan(3 * width, 2 * width).ToArray(), accumulate ? Has.Some.Not.Zero : Has.All.Zero,
            "the unused prompt's gradient: kept when accumulating, else zero");
        Assert.That(actual.Scores, Is.EqualTo(expected.Scores).Within(1e-4));
        Assert.That(actual.Next, Is.EqualTo(expected.Next).Within(1e-4));
        var argmax = Enumerable.Range(0, batch.Rows).Select(r => System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(expected.Next.AsSpan(r * vocab, vocab))).ToArray();
        Assert.That(expected.Tokens, Is.EqualTo(argmax), "the CPU engine's next tokens are its logits' argmax");
        Assert.That(actual.Tokens, Is.EqualTo(argmax), "the device decides the same next tokens");
    }
}

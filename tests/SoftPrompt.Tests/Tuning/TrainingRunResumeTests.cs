using System.Runtime.InteropServices;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>A run interrupted and resumed ends bit-identical to an uninterrupted one (CPU engine).</summary>
public sealed class TrainingRunResumeTests
{
    private const int PromptLength = 3;
    private static readonly Models.Gpt2.Gpt2Weights<float> Weights = TestModels.Random<float>(TestModels.TinyConfig(), seed: 8);
    private static readonly List<TokenizedExample> Train = Rows(11, seed: 1);
    private static readonly List<TokenizedExample> Dev = Rows(5, seed: 2);
    private string directory = null!;

    [SetUp]
    public void SetUp() => directory = Directory.CreateTempSubdirectory("softprompt-resume-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(directory, recursive: true);

    private static List<TokenizedExample> Rows(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => new TokenizedExample(
            [.. Enumerable.Range(0, random.Next(1, 7)).Select(_ => random.Next(23))], [.. Enumerable.Range(0, random.Next(1, 3)).Select(_ => random.Next(23))]))];
    }

    private static TrainOptions Options(bool lengthBuckets) =>
        new(Steps: 6, BatchSize: 3, LearningRate: 0.3f, new OptimizerSettings(OptimizerKind.Adafactor, WeightDecay: 1e-5f), Seed: 7)
        {
            Schedule = LearningRateSchedule.Parse("linear", 2),
            GradientAccumulation = 2,
            LengthBuckets = lengthBuckets,
            EvalEvery = 2,
            CheckpointEvery = 2,
        };

    private static CpuGpt2Engine<float> Engine(int seed)
    {
        var engine = new CpuGpt2Engine<float>(Weights);
        engine.LoadPrompts(TestModels.RandomPrompts<float>(PromptLength * Weights.Config.Embedding, seed).AsSpan(), 1, PromptLength);
        return engine;
    }

    private TrainingRun Run(IPromptEngine engine, TrainOptions options, string checkpoints) =>
        new(engine, Train, options) { Dev = new DevEvaluator(Dev, null, batchSize: 4), Checkpoints = new CheckpointStore(Path.Combine(directory, checkpoints), keepLast: 2) };

    private static (byte[] Prompt, byte[] State) Snapshot(IPromptEngine engine)
    {
        var prompt = new float[engine.RequirePrompts().ValueCount(engine.EmbeddingSize)];
        var state = new float[engine.OptimizerStateLength];
        engine.ReadPrompts(prompt);
        engine.ReadOptimizerState(state);
        return (MemoryMarshal.AsBytes(prompt.AsSpan()).ToArray(), MemoryMarshal.AsBytes(state.AsSpan()).ToArray());
    }

    private sealed class StopAfter(int step, CancellationTokenSource cancel) : ITrainingObserver
    {
        public void OnStep(in TrainProgress progress)
        {
            if (progress.Step == step) cancel.Cancel();
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void InterruptedAfterThreeStepsAndResumedEndsBitIdentical(bool lengthBuckets)
    {
        var options = Options(lengthBuckets);
        using var straight = Engine(seed: 3);
        var whole = Run(straight, options, "straight");
        var wholeResult = whole.Run();
        var expected = Snapshot(straight);

        using var first = Engine(seed: 3);
        using var cancel = new CancellationTokenSource();
        var interrupted = Run(first, options, "interrupted").Run(new StopAfter(3, cancel), cancel.Token);
        Assert.That(interrupted.Stop, Is.EqualTo(TrainStop.Interrupted));
        Assert.That(interrupted.Step, Is.EqualTo(3));
        Assert.That(interrupted.LastCheckpoint, Does.EndWith("checkpoint-00000003.safetensors"), "an interruption checkpoints the step it reached");

        // A new process: a fresh engine (even a different initial prompt) and a fresh run, resumed from the newest checkpoint.
        using var second = Engine(seed: 99);
        var resumed = Run(second, options, "interrupted");
        var store = new CheckpointStore(Path.Combine(directory, "interrupted"));
        var checkpoint = store.LoadLatest(null, out string? path)!;
        Assert.That(checkpoint.Step, Is.EqualTo(3));
        resumed.Resume(checkpoint, path!);
        var resumedResult = resumed.Run();

        Assert.That(resumedResult.Stop, Is.EqualTo(TrainStop.Completed));
        var actual = Snapshot(second);
        Assert.That(actual.Prompt, Is.EqualTo(expected.Prompt), "prompt bytes");
        Assert.That(actual.State, Is.EqualTo(expected.State), "optimizer state bytes");
        Assert.That(resumedResult.Best!.Step, Is.EqualTo(wholeResult.Best!.Step));
        Assert.That(resumedResult.Best.Values, Is.EqualTo(wholeResult.Best.Values));
        Assert.That(resumedResult.LastLoss, Is.EqualTo(wholeResult.LastLoss));
        Assert.That(store.List().Select(c => c.Step), Is.EqualTo(new[] { 4, 6 }), "--keep-last 2");
    }

    [Test]
    public void ResumingWithOtherSettingsNamesTheDifference()
    {
        using var engine = Engine(seed: 3);
        Run(engine, Options(false) with { Steps = 2 }, "run").Run();
        var checkpoint = new CheckpointStore(Path.Combine(directory, "run")).LoadLatest(null, out string? path)!;
        using var other = Engine(seed: 3);
        var changed = Run(other, Options(false) with { BatchSize = 4 }, "other");
        var e = Assert.Throws<CheckpointException>(() => changed.Resume(checkpoint, path!));
        Assert.That(e!.Message, Does.Contain("batch_size was 3, this run has 4").And.Contain("`TrainOptions.BatchSize`"));
    }

    [Test]
    public void ADamagedNewestCheckpointIsSkipped()
    {
        using var engine = Engine(seed: 3);
        Run(engine, Options(false) with { Steps = 2 }, "run").Run();
        var store = new CheckpointStore(Path.Combine(directory, "run"));
        File.WriteAllBytes(store.PathOf(9), [1, 2, 3]);
        var warnings = new List<string>();
        var checkpoint = store.LoadLatest(warnings.Add, out string? path);
        Assert.That(checkpoint!.Step, Is.EqualTo(2));
        Assert.That(warnings, Has.Count.EqualTo(1).And.Some.Contains("checkpoint-00000009"));
    }

    [Test]
    public void SeekReplaysTheEpochOrders()
    {
        var a = new BatchSampler(Train, 4, PromptLength, seed: 5, shuffle: true);
        for (int i = 0; i < 7; i++) a.Next();
        var position = a.Position;
        Assert.That(position.Epoch, Is.EqualTo(2), "28 rows of an 11-row set: into the third epoch");
        var b = new BatchSampler(Train, 4, PromptLength, seed: 5, shuffle: true);
        b.Seek(position);
        for (int i = 0; i < 6; i++)
        {
            var expected = a.Next();
            var actual = b.Next();
            Assert.That(actual.Tokens.AsSpan(0, actual.Rows * actual.TokenLength).ToArray(), Is.EqualTo(expected.Tokens.AsSpan(0, expected.Rows * expected.TokenLength).ToArray()));
        }
        Assert.Throws<InvalidOperationException>(() => b.Seek(position), "only a fresh sampler seeks");
    }
}

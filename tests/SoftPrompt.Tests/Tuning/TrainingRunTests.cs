using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class TrainingRunTests
{
    private static readonly Models.Gpt2.Gpt2Weights<float> Weights = TestModels.Random<float>(TestModels.TinyConfig(), seed: 13);
    private static readonly List<TokenizedExample> Rows = [.. Enumerable.Range(0, 6).Select(i => new TokenizedExample([i, i + 1], [i + 2]))];

    private static CpuGpt2Engine<float> Engine()
    {
        var engine = new CpuGpt2Engine<float>(Weights);
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * Weights.Config.Embedding, seed: 2).AsSpan(), 1, 2);
        return engine;
    }

    private sealed class Recorder : ITrainingObserver
    {
        public readonly List<float> Rates = [];
        public readonly List<(int Step, bool Improved)> Evaluations = [];
        public void OnStep(in TrainProgress progress) => Rates.Add(progress.LearningRate);
        public void OnEvaluation(int step, DevMetrics metrics, bool improved, BestPrompt best) => Evaluations.Add((step, improved));
    }

    [Test]
    public void EachStepRunsAtTheSchedulesRate()
    {
        using var engine = Engine();
        var recorder = new Recorder();
        var options = new TrainOptions(5, 2, 0.5f, new OptimizerSettings(OptimizerKind.AdamW)) { Schedule = LearningRateSchedule.Parse("linear", 1) };
        new TrainingRun(engine, Rows, options).Run(recorder);
        Assert.That(recorder.Rates, Is.EqualTo(new[] { 0f, 0.5f, 0.375f, 0.25f, 0.125f }).Within(1e-7f));
    }

    [Test]
    public void PatienceStopsAfterEvaluationsWithoutImprovement()
    {
        // lr 0: the prompt never changes, so every evaluation after the first ties it and none improves.
        using var engine = Engine();
        var recorder = new Recorder();
        var options = new TrainOptions(10, 2, 0f, new OptimizerSettings(OptimizerKind.Sgd)) { EvalEvery = 1, EarlyStoppingPatience = 2 };
        var result = new TrainingRun(engine, Rows, options) { Dev = new DevEvaluator(Rows, null) }.Run(recorder);
        Assert.That(result.Stop, Is.EqualTo(TrainStop.EarlyStopped));
        Assert.That(result.Step, Is.EqualTo(3));
        Assert.That(recorder.Evaluations, Is.EqualTo(new[] { (1, true), (2, false), (3, false) }));
        Assert.That(result.Best!.Step, Is.EqualTo(1));
    }

    [Test]
    public void ADivergingLossStopsWithAHint()
    {
        var engine = new ScriptedEngine { TrainingLoss = step => step < 3 ? 2f : float.NaN };
        var e = Assert.Throws<InvalidOperationException>(() => new TrainingRun(engine, Rows, new TrainOptions(5, 2, 0.1f, new OptimizerSettings(OptimizerKind.Sgd))).Run());
        Assert.That(e!.Message, Does.Contain("at step 3").And.Contain("lower `TrainOptions.LearningRate`"));
    }
}

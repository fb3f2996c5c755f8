using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>The training loop's own bookkeeping (sampler, schedule, accumulation, metrics log) allocates nothing per step.</summary>
public sealed class TrainingRunAllocationTests
{
    /// <summary>Logs every step, and notes this thread's allocation counter as each step ends.</summary>
    private sealed class LogEveryStep(MetricsLog log, long[] allocatedAfter) : ITrainingObserver
    {
        public void OnStep(in TrainProgress progress)
        {
            log.Step(progress, progress.GradientNorm, progress.Tokens / Math.Max(1e-9, progress.Seconds));
            allocatedAfter[progress.Step] = GC.GetAllocatedBytesForCurrentThread();
        }
    }

    [Test]
    public void StepsAfterTheFirstFewAllocateNothing()
    {
        var config = TestModels.TinyConfig(vocab: 50, positions: 40, embedding: 32, layers: 2, heads: 4, inner: 64);
        using var engine = new CpuGpt2Engine<float>(TestModels.Random<float>(config, seed: 4));
        engine.LoadPrompts(TestModels.RandomPrompts<float>(3 * config.Embedding, seed: 1), 1, 3);
        var random = new Random(2);
        var rows = Enumerable.Range(0, 13).Select(_ => new TokenizedExample([.. Enumerable.Range(0, random.Next(1, 9)).Select(_ => random.Next(50))], [random.Next(50), random.Next(50)])).ToList();
        string directory = Directory.CreateTempSubdirectory("softprompt-alloc-").FullName;
        try
        {
            const int steps = 20;
            var allocatedAfter = new long[steps + 1];
            using var log = MetricsLog.Create(Path.Combine(directory, "m.jsonl"));
            var options = new TrainOptions(steps, BatchSize: 4, LearningRate: 0.01f, new OptimizerSettings(OptimizerKind.Adafactor, ClipNorm: 1f))
            {
                GradientAccumulation = 2,
                Schedule = LearningRateSchedule.Parse("linear", 2),
            };
            new TrainingRun(engine, rows, options).Run(new LogEveryStep(log, allocatedAfter));
            // By step 8 every batch shape has been seen (13 rows, 8 per step), so the engine's buffers are sized.
            Assert.That(allocatedAfter[steps] - allocatedAfter[8], Is.Zero, "bytes allocated on the training thread by steps 9–20 (24 micro-batches, each step logged)");
        }
        finally { Directory.Delete(directory, recursive: true); }
    }
}

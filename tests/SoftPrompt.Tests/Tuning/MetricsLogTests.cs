using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class MetricsLogTests
{
    [Test]
    public void ResumeDropsTheLinesPastTheCheckpoint()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("softprompt-log-").FullName, "run.metrics.jsonl");
        try
        {
            var dev = new DevMetrics("exact_match", new Dictionary<string, double> { ["exact_match"] = 0.5, ["loss"] = 1.25 });
            using (var log = MetricsLog.Create(path))
            {
                for (int step = 1; step <= 5; step++)
                    log.Step(new TrainProgress(step, 10, 2f / step, new ScriptedEngine(), 100, step) { LearningRate = 0.1f }, 0.5f, 1000);
                log.Evaluation(4, dev, improved: true);
            }
            using (var log = MetricsLog.Resume(path, 3))
                log.Step(new TrainProgress(4, 10, 0.25f, new ScriptedEngine(), 100, 1) { LearningRate = 0.1f }, float.NaN, 1000);

            var records = MetricsLog.Read(path);
            Assert.That(records.Select(r => (r.Kind, r.Step)), Is.EqualTo(new[] { ("train", 1), ("train", 2), ("train", 3), ("train", 4) }));
            Assert.That(records[3].Values["loss"], Is.EqualTo(0.25));
            Assert.That(double.IsNaN(records[3].Values["grad_norm"]), "a non-finite norm is written as null");
            Assert.That(File.ReadLines(path).First(), Is.EqualTo("{\"kind\":\"train\",\"step\":1,\"loss\":2,\"lr\":0.1,\"grad_norm\":0.5,\"tokens_per_second\":1000,\"elapsed_s\":1}"));
        }
        finally { Directory.Delete(Path.GetDirectoryName(path)!, recursive: true); }
    }
}

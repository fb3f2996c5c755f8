using SoftPrompt.Cli.Output;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Training;

/// <summary>What `train` does as the run goes: the progress line, the metrics log, and the best prompt written on each improvement.</summary>
internal sealed class TrainingConsole(ProgressLine progress, MetricsLog log, Action<BestPrompt> onBest) : ITrainingObserver
{
    private long tokens;

    public double TokensPerSecond { get; private set; }

    public void OnStep(in TrainProgress p)
    {
        tokens += p.Tokens;
        TokensPerSecond = tokens / Math.Max(1e-9, p.Seconds);
        float gradientNorm = p.GradientNorm;
        log.Step(p, gradientNorm, TokensPerSecond);
        double eta = p.Seconds / Math.Max(1, p.Step - p.StartStep) * (p.Steps - p.Step);
        progress.Update(p.Step, p.Steps, p.Loss, p.LearningRate, gradientNorm, TokensPerSecond, eta);
    }

    public void OnEvaluation(int step, DevMetrics metrics, bool improved, BestPrompt best)
    {
        log.Evaluation(step, metrics, improved);
        if (improved) onBest(best);
        progress.Message($"eval  step {step}: {metrics}" + (improved ? "  (best so far)" : $"  (best: step {best.Step}, {best.Metrics.Primary} {best.Metrics.Score:0.####})"));
    }

    public void OnCheckpoint(int step, string path) => progress.Message($"checkpoint step {step} → {path}");
}

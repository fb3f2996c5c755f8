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
        // The gradient norm waits for the device: it is read only on steps that draw a line or log it.
        bool drawn = progress.Due(p.Step, p.Steps);
        float? gradientNorm = drawn || MetricsLog.LogsGradientNorm(p.Step, p.Steps) ? p.GradientNorm : null;
        log.Step(p, gradientNorm, TokensPerSecond);
        double eta = p.Seconds / Math.Max(1, p.Step - p.StartStep) * (p.Steps - p.Step);
        if (drawn) progress.Draw(p.Step, p.Steps, p.Loss, p.LearningRate, gradientNorm!.Value, TokensPerSecond, eta);
    }

    public void OnEvaluation(int step, DevMetrics metrics, bool improved, BestPrompt best)
    {
        log.Evaluation(step, metrics, improved);
        if (improved) onBest(best);
        progress.Message($"eval  step {step}: {metrics}" + (improved ? "  (best so far)" : $"  (best: step {best.Step}, {best.Metrics.Primary} {best.Metrics.Score:0.####})"));
    }

    public void OnCheckpoint(int step, string path) => progress.Message($"checkpoint step {step} → {path}");
}

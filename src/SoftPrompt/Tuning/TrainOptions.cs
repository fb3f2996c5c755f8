using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>One training run's settings.</summary>
public sealed record TrainOptions(
    int Steps,
    int BatchSize,
    float LearningRate,
    OptimizerSettings Optimizer,
    int Seed = 0,
    bool Shuffle = true);

/// <summary>What the trainer reports after each step.</summary>
public readonly record struct TrainProgress(int Step, int Steps, float Loss, IPromptEngine Engine, int Tokens, double Seconds)
{
    /// <summary>Waits for the device: read it only on steps that are logged.</summary>
    public float GradientNorm => Engine.LastGradientNorm;
}

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
public readonly record struct TrainProgress(int Step, int Steps, float Loss, float GradientNorm, int Tokens, double Seconds);

namespace SoftPrompt.Engines;

public enum OptimizerKind { Sgd, AdamW }

/// <summary>Optimizer hyper-parameters; the learning rate comes per step (schedules live in the trainer).</summary>
public sealed record OptimizerSettings(
    OptimizerKind Kind,
    float Beta1 = 0.9f,
    float Beta2 = 0.999f,
    float Epsilon = 1e-8f,
    float WeightDecay = 0f,
    /// <summary>Global L2 gradient-norm clip; 0 = off.</summary>
    float ClipNorm = 0f);

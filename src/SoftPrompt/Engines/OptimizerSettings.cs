namespace SoftPrompt.Engines;

public enum OptimizerKind { Sgd, AdamW, Adafactor }

/// <summary>
/// Optimizer hyper-parameters; the learning rate comes per step (schedules live in the trainer).
/// Adafactor follows Hugging Face's implementation with relative_step = scale_parameter = False and no
/// first moment, which is the paper's setup: factored second moments decayed by 1 − t^DecayRate and
/// update clipping at ClipThreshold (RMS).
/// </summary>
public sealed record OptimizerSettings(
    OptimizerKind Kind,
    float Beta1 = 0.9f,
    float Beta2 = 0.999f,
    float Epsilon = 1e-8f,
    float WeightDecay = 0f,
    /// <summary>Global L2 gradient-norm clip; 0 = off.</summary>
    float ClipNorm = 0f,
    float DecayRate = -0.8f,
    float ClipThreshold = 1f,
    float AdafactorEpsilon = 1e-30f);
